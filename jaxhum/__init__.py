"""jaxhum: a JAX stack for training humanoid behaviours with reinforcement learning on MuJoCo MJX."""

import contextlib as _contextlib
import io as _io
import sys as _sys

# mujoco.mjx prints "Failed to import warp..." to stdout when its optional warp backend is not
# installed; jaxhum uses the 'jax' implementation, so drop those lines (and pass on anything
# else) to keep what jaxhum programs print (such as --print-config's JSON) clean.
with _contextlib.redirect_stdout(_io.StringIO()) as _captured:
    import mujoco.mjx  # noqa: F401
for _line in _captured.getvalue().splitlines():
    if not _line.startswith(("Failed to import warp", "Failed to import mujoco_warp")):
        print(_line, file=_sys.stderr)

from jaxhum import envs, robots, sim  # noqa: E402

__version__ = "0.1.0"

__all__ = ["envs", "robots", "sim"]

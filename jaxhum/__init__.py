"""jaxhum: a JAX stack for training humanoid behaviours with reinforcement learning on MuJoCo MJX."""

import contextlib as _contextlib
import sys as _sys

# mujoco.mjx prints to stdout when its optional warp backend is not installed; route that to
# stderr so what jaxhum programs print on stdout (such as --print-config's JSON) stays clean.
with _contextlib.redirect_stdout(_sys.stderr):
    import mujoco.mjx  # noqa: F401

from jaxhum import envs, observations, rewards, sim  # noqa: E402

__version__ = "0.1.0"

__all__ = ["envs", "observations", "rewards", "sim"]

"""Physics layer: MJCF loading, pure init/step over MuJoCo MJX, name lookups.

Never imports `jaxhum.envs` or `jaxhum.rl`.
"""

from jaxhum.sim.model import (
    ModelLoadError,
    NameLookupError,
    PhysicsOptions,
    SimModel,
    apply_options,
    from_mj_model,
    load_model,
)
from jaxhum.sim.physics import init, step

__all__ = ["ModelLoadError", "NameLookupError", "PhysicsOptions", "SimModel", "apply_options", "from_mj_model", "init",
           "load_model", "step"]

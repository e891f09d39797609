"""Small helpers shared by test modules (imported as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import types
from collections.abc import Iterator

import jax
import numpy as np

from jaxhum.run.checkpoint import CheckpointStore


class TraceCounter:
    """Wraps a function and counts how often JAX traces it."""

    def __init__(self, fn):
        self.fn, self.count = fn, 0

    def __call__(self, *args):
        self.count += 1
        return self.fn(*args)


class CountCompiles:
    """Counts XLA compiles (jax.monitoring's backend-compile events) per function name."""

    def __init__(self):
        self.names: list[str] = []

    def _listener(self, event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            self.names.append(str(kwargs.get("fun_name")))

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listener)

    def count(self, part: str) -> int:
        return sum(part in name for name in self.names)


def checkpoint_leaves(run_dir: pathlib.Path, step: int) -> dict[str, tuple]:
    """path -> (shape, dtype, raw bytes) of every leaf of the TrainState saved at `step`: equal
    dicts mean bit-for-bit equal states (PRNG keys compared through their key data)."""
    store = CheckpointStore(run_dir, read_only=True)
    try:
        state = store.restore(step=step).state
    finally:
        store.close()
    out = {}
    for path, leaf in state.items():
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        leaf = np.asarray(leaf)
        out[path] = (leaf.shape, leaf.dtype.str, leaf.tobytes())
    return out


# ----------------------------------------------------------------------------- a tiny MJX task

SLIDER_XML = """
<mujoco>
  <option timestep="0.02"/>
  <worldbody>
    <body name="cart">
      <joint name="x" type="slide" axis="1 0 0" damping="0.5"/>
      <geom type="sphere" size="0.1" mass="1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator><motor joint="x" gear="2" ctrlrange="-1 1"/></actuator>
</mujoco>
"""


def make_slider_env(episode_length: int = 10, curriculum: tuple[str, ...] = (), reset_level: float = 1.0):
    """A one-joint MJX task built like the real ones (EnvState.start/advance, with_autoreset).

    A cart on a rail should reach a target `unit * 2 * level`: `unit` in [-1, 1] is drawn at
    reset, `level` is the curriculum level 'range' read at each step from
    `state.info['curriculum']['range']` when the task declares it (`curriculum=('range',)`;
    its reset puts `reset_level` there), else 1. Observation [x, v, target]; reward -|x - target|;
    metric 'target' = the target of the step. Compiles in seconds, unlike a humanoid.
    """
    import jax.numpy as jnp
    import mujoco
    from mujoco import mjx

    from jaxhum.envs.base import Env, EnvState, with_autoreset

    mj_model = mujoco.MjModel.from_xml_string(SLIDER_XML)
    # This process's own device, as jaxhum.sim does (MJX's default, jax.devices()[0], belongs to
    # process 0 in a multi-process run); the same device in a single process.
    model = mjx.put_model(mj_model, device=jax.local_devices()[0])

    def level(info):
        return info["curriculum"]["range"] if "range" in curriculum else jnp.ones(())

    def observe(data, target):
        return jnp.stack([data.qpos[0], data.qvel[0], target]).astype(jnp.float32)

    def reset(key):
        key_x, key_unit = jax.random.split(key)
        data = mjx.forward(model, mjx.make_data(model).replace(
            qpos=jax.random.uniform(key_x, (1,), minval=-0.1, maxval=0.1)))
        info = {"unit": jax.random.uniform(key_unit, (), minval=-1.0, maxval=1.0)}
        if curriculum:
            info["curriculum"] = {name: jnp.asarray(reset_level, jnp.float32) for name in curriculum}
        target = 2.0 * info["unit"] * level(info)
        metrics = {"reward/distance": jnp.zeros(()), "target": target}
        return EnvState.start(data, observe(data, target), 1, metrics, info=info)

    def step_without_reset(state, action):
        data = mjx.step(model, state.data.replace(ctrl=jnp.clip(action, -1.0, 1.0)))
        target = 2.0 * state.info["unit"] * level(state.info)
        distance = -jnp.abs(data.qpos[0] - target)
        metrics = {"reward/distance": distance, "target": target}
        terminated = (jnp.abs(data.qpos[0]) > 5.0).astype(jnp.float32)
        return state.advance(data, observe(data, target), distance, terminated, action, metrics)

    def reset_to(key, qpos, qvel):
        state = reset(key)
        data = mjx.forward(model, state.data.replace(qpos=qpos, qvel=qvel))
        return EnvState.start(data, observe(data, state.obs[2]), 1, state.metrics, info=state.info)

    return Env(name="slider", config=None, reset=reset, reset_to=reset_to,
               step=with_autoreset(step_without_reset, episode_length), step_without_reset=step_without_reset,
               observation_size=3, action_size=1, dt=0.02, episode_length=episode_length, sim=None,
               curriculum=tuple(curriculum))


@dataclasses.dataclass(frozen=True)
class SliderConfig:
    """The slider as a registered task ('slider'): its one setting."""

    episode_length: int = 10

    def validate(self) -> None:
        if self.episode_length <= 0:
            raise ValueError(f"episode_length: must be a positive integer, got {self.episode_length}")


SLIDER_TASK = "slider"


@contextlib.contextmanager
def slider_task() -> Iterator[None]:
    """Adds the slider to the task registry (`jaxhum.envs.REGISTRY`) while the block runs, so
    that the runner and its command line (`--set env_name=slider`), resume and checkpoint
    loading all build it by name like a real task. For tests of the runner's own behaviour
    (resume, seeds, signals), which take the same code paths whichever task is trained."""
    from jaxhum import envs
    from jaxhum.envs import registry

    spec = registry.TaskSpec(SliderConfig, lambda config: make_slider_env(episode_length=config.episode_length))
    extended = types.MappingProxyType({**registry.REGISTRY, SLIDER_TASK: spec})
    saved = registry.REGISTRY, envs.REGISTRY
    registry.REGISTRY = envs.REGISTRY = extended
    try:
        yield
    finally:
        registry.REGISTRY, envs.REGISTRY = saved


def leaves_with_key_data(tree):
    """`tree` with typed PRNG keys replaced by their raw key data (so trees can be compared)."""
    is_key = lambda x: hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)

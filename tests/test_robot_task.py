"""The robot-task skeleton on its own: a tiny task defined here (stand; reward = upright; one
observation term) built with `robot_task.build` on jh1: sizes and fields, shapes, no retrace under
jit(vmap), finiteness, autoreset, the host observation; walk on the skeleton: its reward is the sum
of its logged terms, each the chapter's number; no task module imports another.

Two MJX compiles: one jitted rollout (reset, a few steps) of each task.
"""

import ast
import dataclasses
import pathlib
import types
from collections.abc import Mapping

import chex
import jax
import numpy as np
import pytest
from mujoco import mjx

import jaxhum
from jaxhum.envs import robot_task
from jaxhum.envs.terms import observations, rewards
from jaxhum.envs.terms import randomization as R

N, STEPS = 2, 4
EPISODE_SECONDS = 0.06  # 3 control steps of 20 ms: the rollout crosses one truncation
UPRIGHT_HEIGHT = 0.5  # m
WEIGHTS = types.MappingProxyType({"upright": 1.0})


@dataclasses.dataclass(frozen=True)
class StandConfig:
    """The fields `robot_task.build` reads."""

    robot: str = "jh1"
    episode_seconds: float = EPISODE_SECONDS
    fall_height: float = 0.0
    fall_tilt: float = 0.0
    terminate_on_fall: bool = True
    reset_noise_scale: float = 0.05
    observation_history: int = 1
    reward_weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: WEIGHTS)
    randomization: R.RandomizationConfig = dataclasses.field(default_factory=R.RandomizationConfig)

    def validate(self) -> None:
        pass


def stand_evaluate(*, config, setup, data, fell):
    height = data.xpos[setup.idx.root_body_id, 2]
    quantities = {"torso_height": height, "upright_height": UPRIGHT_HEIGHT}
    return robot_task.Outcome(quantities, robot_task.fall_termination(fell=fell, config=config), {"height": height})


STAND = robot_task.TaskDef(
    observation_terms=(observations.gravity_in_imu,),
    reward_terms={"upright": rewards.upright_bonus},
    evaluate=stand_evaluate,
)


def _rollout(env):
    """jit(keys (N,), actions (STEPS, N, A)) -> (reset states, states after each step), traced once."""

    def run(keys, actions):
        start = jax.vmap(env.reset)(keys)
        step = lambda s, a: (jax.vmap(env.step)(s, a),) * 2  # noqa: E731
        return start, jax.lax.scan(step, start, actions)[1]

    return jax.jit(chex.assert_max_traces(run, n=1))


def _actions(env, seed):
    return jax.random.uniform(jax.random.PRNGKey(seed), (STEPS, N, env.action_size), minval=-1.0, maxval=1.0)


@pytest.fixture(scope="module")
def stand():
    chex.clear_trace_counter()
    env = robot_task.build(StandConfig(), STAND, name="stand")
    run = _rollout(env)
    first = jax.device_get(run(jax.random.split(jax.random.PRNGKey(0), N), _actions(env, 1)))
    second = jax.device_get(run(jax.random.split(jax.random.PRNGKey(1), N), _actions(env, 2)))  # no retrace
    return env, first, second


def test_sizes_and_fields(stand):
    env, _, _ = stand
    a = len(env.robot.joint_names)
    assert env.name == "stand" and env.action_size == a
    assert env.observation_layout == (("gravity_in_imu", 3),) and env.observation_size == 3
    assert env.critic_observation_size == 0 and env.curriculum == () and not env.fresh_starts
    assert env.episode_length == 3 and env.dt == pytest.approx(0.02)
    idx = env.robot.index(env.sim)
    np.testing.assert_array_equal(env.deploy.ctrl_offset, idx.home_joint_pos)


def test_shapes_finite_and_autoreset(stand):
    env, (start, states), (start2, _) = stand
    chex.assert_shape([start.obs, states.obs[0]], (N, 3))
    chex.assert_shape(states.reward, (STEPS, N))
    chex.assert_shape(states.critic_obs, (STEPS, N, 0))
    chex.assert_tree_all_finite((start, states))
    assert set(states.metrics) == {"reward/upright", "height", "fall", "nonfinite"}
    assert not np.array_equal(start.data.qpos, start2.data.qpos)  # another key, another reset
    # Episode length 3: the third step ends every episode by truncation, the fourth starts anew.
    np.testing.assert_array_equal(states.done[:, 0], [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(states.truncated[2], 1.0)
    np.testing.assert_array_equal(states.step_count[:, 0], [1, 2, 0, 1])


def test_reward_is_the_upright_term(stand):
    _, (_, states), _ = stand
    standing = states.metrics["height"] > UPRIGHT_HEIGHT
    np.testing.assert_array_equal(states.metrics["reward/upright"], np.where(standing, 1.0, -10.0))
    np.testing.assert_array_equal(states.reward, states.metrics["reward/upright"])
    np.testing.assert_array_equal(states.metrics["fall"], 0.0)  # jh1 stands for 4 steps


def test_host_observation_equals_mjx(stand):
    env, (_, states), _ = stand
    data = mjx.get_data(env.sim.mj_model, jax.tree.map(lambda x: x[1, 0], states.data))  # one env, mid-episode
    host = env.deploy.host_observation(model=env.sim.mj_model, data=data)
    assert host.shape == (3,) and host.dtype == np.float32
    np.testing.assert_allclose(host, states.obs[1, 0], rtol=1e-5, atol=1e-5)
    assert not env.deploy.host_terminated(model=env.sim.mj_model, data=data)
    with pytest.raises(TypeError, match="command"):
        env.deploy.host_observation(model=env.sim.mj_model, data=data, command=np.zeros(3))


# Full tier (~30 s of walk compiles): walk's terms by hand are in test_walk.py, the weighted sum
# in test_envs.py, and the stand task above checks the skeleton's reward against its metric.
@pytest.mark.full
def test_walk_reward_is_the_weighted_sum_of_its_terms():
    env = jaxhum.envs.make("walk", episode_seconds=EPISODE_SECONDS)
    actions = _actions(env, 3)
    _, states = jax.device_get(_rollout(env)(jax.random.split(jax.random.PRNGKey(4), N), actions))
    terms = {k: v for k, v in states.metrics.items() if k.startswith("reward/")}
    assert set(terms) == {f"reward/{t}" for t in ("forward_velocity", "upright", "energy", "orientation")}
    np.testing.assert_allclose(states.reward, sum(terms.values()), rtol=1e-6, atol=1e-6)
    # The chapter's weights on quantities read back from the step: 2.0 * vx, +1 standing, -0.005 |a|^2.
    np.testing.assert_allclose(terms["reward/forward_velocity"], 2.0 * states.metrics["x_velocity"], rtol=1e-6)
    np.testing.assert_array_equal(terms["reward/upright"], 1.0)
    np.testing.assert_allclose(terms["reward/energy"], -0.005 * np.sum(np.asarray(actions) ** 2, axis=-1), rtol=1e-5)
    chex.assert_tree_all_finite(states)


def test_call_passes_only_the_named_arguments():
    def fn(*, a, b=2):
        return a, b

    assert robot_task.call(fn, a=1, c=3) == (1, 2)
    assert robot_task.call(fn, a=1, b=5, c=3) == (1, 5)
    with pytest.raises(TypeError):
        robot_task.call(fn, c=3)


def test_no_task_module_imports_another():
    envs_dir = pathlib.Path(robot_task.__file__).parent
    tasks = set(jaxhum.envs.REGISTRY)
    for path in [*envs_dir.glob("*.py"), *envs_dir.glob("terms/*.py")]:
        if path.name in ("registry.py", "__init__.py"):
            continue
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "jaxhum.envs":
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.removeprefix("jaxhum.envs."))
            elif isinstance(node, ast.Import):
                imported |= {a.name.removeprefix("jaxhum.envs.") for a in node.names}
        assert not imported & tasks, f"{path.name} imports task module(s) {sorted(imported & tasks)}"

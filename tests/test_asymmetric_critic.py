"""Asymmetric actor-critic: a privileged critic observation reaches the value net and nothing else.

The task is humanoid_run wrapped to expose a critic observation (the root's true linear
velocity and its height, noise-free; `critic_offset` in the state's info is added to it so a
test can move the critic's input without touching anything else). One trainer (tiny networks,
4 envs x 4 steps) is compiled once and shared by every test; the runs go through the real
runner, checkpoints and export.

Tasks without a critic observation must train exactly as before the feature: a tiny run of the
point-mass env (tests/test_rl_train.py) is compared against a fingerprint of the same run made
with the code before asymmetric critics existed (commit b88d854).
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib

import chex
import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhum.config import FrozenMapping
from jaxhum.envs import base as envs_base
from jaxhum.rl import PPOConfig, make_train
from jaxhum.run import checkpoint
from jaxhum.run import config as run_config
from jaxhum.run import loop as run_loop
from jaxhum.tools import export, sim2sim

CRITIC_SIZE = 4  # root linear velocity (3) and root height (1)
NUM_ENVS, UNROLL = 4, 4
ITERATION = NUM_ENVS * UNROLL  # env steps per iteration
TOTAL = 4 * ITERATION

CONFIG = run_config.RunConfig(
    env_name="humanoid_run",
    env=FrozenMapping({"episode_length": 13}),
    ppo=PPOConfig(num_envs=NUM_ENVS, unroll_length=UNROLL, num_minibatches=2, num_updates_per_batch=1,
                  policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=2),
    seed=3,
    num_timesteps=TOTAL,
    log_every=ITERATION,
    eval_every=0,
    checkpoint_every=2 * ITERATION,
)


def with_critic_observation(env: envs_base.Env) -> envs_base.Env:
    """`env` with `critic_obs` = (root linear velocity, root height) + info['critic_offset']."""

    def critic_of(state: envs_base.EnvState) -> jax.Array:
        data = state.data
        return jnp.concatenate([data.qvel[:3], data.qpos[2:3]]) + state.info["critic_offset"]

    def start(state: envs_base.EnvState) -> envs_base.EnvState:
        info = {"critic_offset": jnp.zeros((), jnp.float32)}
        state = state.replace(info=info, first_info=info)
        critic = critic_of(state)
        return state.replace(critic_obs=critic, final_critic_obs=critic, first_critic_obs=critic)

    def step_without_reset(state: envs_base.EnvState, action: jax.Array) -> envs_base.EnvState:
        nxt = env.step_without_reset(state, action)
        critic = critic_of(nxt)
        return nxt.replace(critic_obs=critic, final_critic_obs=critic)

    return dataclasses.replace(
        env,
        reset=lambda key: start(env.reset(key)),
        reset_to=lambda key, qpos, qvel: start(env.reset_to(key, qpos, qvel)),
        step=envs_base.with_autoreset(step_without_reset, env.episode_length),
        step_without_reset=step_without_reset,
        critic_observation_size=CRITIC_SIZE,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The wrapped task stands in for humanoid_run wherever a run is built (runner, loading,
    export) while this module runs; one trainer is shared by all tests."""
    import functools

    from jaxhum import envs

    plain = run_config.build_env(CONFIG)  # memoized by runs before the patch: the unwrapped task
    wrapped = with_critic_observation(plain)
    with pytest.MonkeyPatch.context() as patch:
        make_env = functools.lru_cache(maxsize=2)(
            lambda name, overrides: with_critic_observation(envs.make(name, **overrides)))
        patch.setattr(run_config, "_make_env", make_env)
        patch.setattr(run_config, "_TEMPLATES", {})  # templates built here are of the wrapped task
        trainer = run_config.build_trainer(CONFIG)
        root = tmp_path_factory.mktemp("asymmetric")
        yield {"plain": plain, "env": wrapped, "trainer": trainer, "root": root}


@pytest.fixture(scope="module")
def trained(setup):
    """A reference run of TOTAL steps, and one stopped half way then resumed to TOTAL."""
    trainer, root = setup["trainer"], setup["root"]
    ref, resumed = root / "ref", root / "resumed"
    assert run_loop.train(CONFIG, ref, progress="none", trainer=trainer).exit_code == 0
    half = dataclasses.replace(CONFIG, num_timesteps=TOTAL // 2)
    assert run_loop.train(half, resumed, progress="none", trainer=trainer).step == TOTAL // 2
    result = run_loop.train(CONFIG, resumed, resume=True, progress="none", trainer=trainer)
    assert (result.exit_code, result.step) == (0, TOTAL)
    return {"ref": ref, "resumed": resumed}


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)  # iteration donates its argument


def test_critic_obs_changes_the_value_net_and_never_the_actions(setup):
    trainer, env = setup["trainer"], setup["env"]
    state = trainer.init(jax.random.key(0))
    # Every critic observation of the rollout moves by 1000: the current one, and through the
    # offset in info every later one (autoresets included).
    shift = {"critic_offset": jnp.full((NUM_ENVS,), 1000.0, jnp.float32)}
    shifted = state.replace(env_state=state.env_state.replace(
        info=shift, first_info=shift, critic_obs=state.env_state.critic_obs + 1000.0))
    a, metrics_a = trainer.iteration(_copy(state))
    b, metrics_b = trainer.iteration(_copy(shifted))

    # A full iteration's rollout acted identically: every physics state, observation, reward
    # and last action of every env, bit for bit; so did everything the policy reads.
    for field in ("data", "obs", "final_obs", "reward", "done", "last_action", "step_count", "metrics"):
        chex.assert_trees_all_equal(getattr(a.env_state, field), getattr(b.env_state, field))
    chex.assert_trees_all_equal(a.normalizer, b.normalizer)
    chex.assert_trees_all_equal((a.episode_return, a.episode_length), (b.episode_return, b.episode_length))
    assert float(metrics_a["train/mean_reward_per_step"]) == float(metrics_b["train/mean_reward_per_step"])

    # The critic saw the shift: its statistics, its loss and its parameters differ.
    np.testing.assert_allclose(b.env_state.critic_obs - a.env_state.critic_obs, 1000.0, rtol=1e-5)
    np.testing.assert_allclose(b.critic_normalizer.mean - a.critic_normalizer.mean, 1000.0, rtol=1e-5)
    assert float(metrics_a["train/value_loss"]) != float(metrics_b["train/value_loss"])
    leaves_a, leaves_b = jax.tree.leaves(a.value_params), jax.tree.leaves(b.value_params)
    assert any(not np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b))
    assert env.critic_observation_size == CRITIC_SIZE


def test_value_net_reads_the_critic_observation(setup):
    trainer, env = setup["trainer"], setup["env"]
    state = jax.eval_shape(trainer.init, jax.random.key(0))
    assert state.value_params["params"]["hidden_0"]["kernel"].shape == (CRITIC_SIZE, 8)
    assert state.policy_params["params"]["hidden_0"]["kernel"].shape == (env.observation_size, 8)
    assert state.critic_normalizer.mean.shape == (CRITIC_SIZE,)
    assert state.normalizer.mean.shape == (env.observation_size,)
    assert env.observation_size != CRITIC_SIZE


def test_task_without_critic_observation_keeps_the_symmetric_state(setup):
    plain = setup["plain"]
    assert plain.critic_observation_size == 0
    state = jax.eval_shape(make_train(plain, CONFIG.ppo, 1).init, jax.random.key(0))
    assert state.critic_normalizer is None  # no leaf: checkpoints keep their layout
    assert state.value_params["params"]["hidden_0"]["kernel"].shape == (plain.observation_size, 8)


def test_training_resumes_bit_exactly_with_the_critic_normalizer(trained):
    ref = helpers.checkpoint_leaves(trained["ref"], TOTAL)
    assert helpers.checkpoint_leaves(trained["resumed"], TOTAL) == ref
    critic_leaves = [path for path in ref if path.startswith(".critic_normalizer")]
    assert len(critic_leaves) == 4, sorted(ref)  # count, mean, summed_variance, std
    count = np.frombuffer(ref[".critic_normalizer.count"][2], np.float32)
    assert count[0] == TOTAL  # every rollout step was folded in


def test_load_policy_and_export_need_only_the_actor_observation(setup, trained, tmp_path):
    import onnxruntime

    from jaxhum.tools.deploy import Policy

    env = setup["env"]
    run = checkpoint.load_run(trained["ref"])
    assert run.params.normalizer.mean.shape == (env.observation_size,)
    assert not hasattr(run.params, "critic_normalizer")
    states = setup["trainer"].init(jax.random.key(5)).env_state  # reset states (init is compiled)
    obs = np.asarray(states.obs, np.float32)
    expected = np.asarray(checkpoint.load_policy(trained["ref"])(obs))
    assert expected.shape == (NUM_ENVS, env.action_size) and np.std(expected) > 0.0

    paths = export.export(run, tmp_path)
    session = onnxruntime.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1] == env.observation_size
    np.testing.assert_allclose(session.run(["action"], {"obs": obs})[0], expected, atol=1e-5)
    policy = Policy.load(str(paths["npz"]))
    np.testing.assert_allclose(policy(obs), expected, atol=1e-5)
    # Sim-to-sim builds observations from native MuJoCo data alone.
    qpos, qvel = np.asarray(states.data.qpos[0], np.float64), np.asarray(states.data.qvel[0], np.float64)
    episode = sim2sim.native_episode(run.env, policy, qpos, qvel)
    assert 1 <= episode["length"] <= env.episode_length


# ----------------------------------------------------------------------------- no critic obs

# The tiny point-mass run of tests/test_rl_train.py (its SMALL config), 3 iterations from key 7:
# sha256 of every leaf of (state, last metrics) on jax 0.10.2 (CPU), by the trainer before
# asymmetric critics were added, and the float64 sum of each leaf (the check everywhere). XLA's CPU
# code depends on the processor's instruction set, so the digest is checked only on the CPU it was
# recorded on: e012cac9... was recorded in 9cb4b6f on a CPU that was not noted; on an AMD EPYC
# with AVX-512 the trainer of that same commit gives the digest below (checked at 66fa09d).
GOLDEN_JAX = "0.10.2"
GOLDEN_SHA256 = {("AMD EPYC", True): "b45070bf596c8bfde3883deabbf8ba562a695333e9da6d8305f7f3dbb97799a9"}


def _cpu_signature() -> tuple[str, bool]:
    """(model name, has AVX-512F) of this machine's CPU, from /proc/cpuinfo ('', False if unreadable)."""
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", False
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return model, "avx512f" in flags
GOLDEN_SUMS = [
    0.004231495768181048, 0.1853525135666132, 0.003164197434671223, 2.8692043852061033,
    0.0002129829954355955, -2.3208714611828327, -0.002834305865690112, -0.4013309506699443, 12.0,
    0.025271777994930744, -0.09779430023627356, -0.055105770006775856, -0.4671472823538352,
    -0.025760126649402082, -0.0045627972303918796, 0.09871644526720047, 0.20210176659747958,
    0.0007193917945187422, 0.004101476517462288, 0.0013356528070289642, 0.0040945135310721525,
    6.747714667909577e-05, 0.00017459793421137348, 0.0002780891372822225, 0.0003881665311382676,
    12.0, 120.0, 0.1418013572692871, 379.0634536743164, 3.5362155437469482, -2.6142994314432144,
    0.9115498065948486, 30077381734.0, 0.9115498811006546, -10.116952449083328, 0.0, 0.0,
    0.9115498811006546, 8.0, -9.589245051145554, -0.5277072857134044, 8.0, 3825469318.0, 3.0,
    -10.116952449083328, 8.0, 2.3864211016189074e-06, 0.0, 0.9402720332145691, 7.0,
    -9.780496597290039, 8.0, 0.00024000000848900527, -1.3770581483840942, -0.0006925568450242281,
    0.045933544635772705, 0.0951327383518219,
]


def test_symmetric_training_is_unchanged():
    from test_rl_train import make_point_env

    config = PPOConfig(num_envs=8, unroll_length=5, num_minibatches=2, num_updates_per_batch=2,
                       policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=4,
                       lr_schedule="linear")
    trainer = make_train(make_point_env(episode_length=7), config, num_iterations=10)
    state = trainer.init(jax.random.key(7))
    for _ in range(3):
        state, metrics = trainer.iteration(state)
    # A metric added after the golden was made (non-finite resets, 0 here); the rest must not move.
    assert float(metrics.pop("train/nonfinite_resets")) == 0.0
    is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731
    leaves = [np.asarray(jax.random.key_data(x) if is_key(x) else x) for x in jax.tree.leaves((state, metrics))]
    sums = [float(np.sum(x, dtype=np.float64)) for x in leaves]
    np.testing.assert_allclose(sums, GOLDEN_SUMS, rtol=1e-4, atol=1e-6)
    golden = GOLDEN_SHA256.get(_cpu_signature())
    if jax.__version__ == GOLDEN_JAX and jax.default_backend() == "cpu" and golden is not None:
        digest = hashlib.sha256(b"".join(x.tobytes() for x in leaves)).hexdigest()
        assert digest == golden

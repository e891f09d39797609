"""The on-device replay buffer (jaxhum.rl.replay) and SAC / TD3 (jaxhum.rl.off_policy).

Hand-derived numbers for the replay arithmetic and the losses, an exact Polyak update, the
iteration's shapes, single compile and determinism, and a small learning test on the point mass
of tests/test_rl_train.py.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time

import chex
import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_rl_train import make_point_env

from jaxhum.rl import off_policy, replay
from jaxhum.rl.off_policy import OffPolicyConfig, make_off_policy_train
from jaxhum.rl.train import policy_bundle

# ----------------------------------------------------------------------------- replay buffer


def _items(values):
    """A batch of items {'x': (N,), 'y': (N, 2)} with x = values, y = [values, -values]."""
    x = jnp.asarray(values, jnp.float32)
    return {"x": x, "y": jnp.stack([x, -x], axis=-1)}


def _empty(capacity):
    return replay.init({"x": jnp.zeros(()), "y": jnp.zeros((2,))}, capacity)


def test_insert_wraps_around_and_counts_the_fill():
    buffer = _empty(5)
    assert buffer.capacity == 5 and int(buffer.size) == 0
    buffer = replay.insert(buffer, _items([1, 2]))
    assert int(buffer.size) == 2 and int(buffer.insert_index) == 2
    buffer = replay.insert(buffer, _items([3, 4]))
    assert int(buffer.size) == 4 and int(buffer.insert_index) == 4
    buffer = replay.insert(buffer, _items([5, 6]))  # slot 4, then slot 0
    assert int(buffer.size) == 5 and int(buffer.insert_index) == 1
    np.testing.assert_array_equal(buffer.data["x"], [6, 2, 3, 4, 5])
    np.testing.assert_array_equal(buffer.data["y"][:, 1], [-6, -2, -3, -4, -5])
    buffer = jax.jit(replay.insert)(buffer, _items([7, 8, 9, 10, 11]))  # a whole capacity at once
    np.testing.assert_array_equal(buffer.data["x"], [11, 7, 8, 9, 10])
    assert int(buffer.size) == 5 and int(buffer.insert_index) == 1
    with pytest.raises(ValueError, match="batch"):
        replay.insert(buffer, _items(range(6)))
    skipped = jax.jit(replay.insert)(buffer, _items([0, 0]), jnp.asarray(False))
    chex.assert_trees_all_equal(skipped, buffer)  # not valid: nothing changes


def test_sampling_draws_only_filled_slots_uniformly_and_is_determined_by_the_key():
    buffer = replay.insert(_empty(100), _items([1, 2, 3]))
    sample = jax.jit(replay.sample, static_argnums=2)
    batch = sample(buffer, jax.random.key(0), 3000)
    assert batch["x"].shape == (3000,) and batch["y"].shape == (3000, 2)
    values, counts = np.unique(np.asarray(batch["x"]), return_counts=True)
    np.testing.assert_array_equal(values, [1, 2, 3])  # never an empty slot (0)
    assert counts.min() > 900  # uniform: ~1000 each
    np.testing.assert_array_equal(batch["y"][:, 0], batch["x"])  # items stay whole
    chex.assert_trees_all_equal(batch, sample(buffer, jax.random.key(0), 3000))
    other = sample(buffer, jax.random.key(1), 3000)
    assert not np.array_equal(other["x"], batch["x"])


def test_nstep_return_by_hand():
    r = jnp.asarray([1.0, 2.0, 4.0])
    none = jnp.zeros(3)
    reward, discount, last = replay.nstep_return(r, none, none, 0.5)
    assert (float(reward), float(discount), int(last)) == (1.0 + 0.5 * 2 + 0.25 * 4, 0.125, 2)
    ends = jnp.asarray([0.0, 1.0, 1.0])  # the episode ends at step 1: steps after it do not count
    reward, discount, last = replay.nstep_return(r, ends, ends, 0.5)  # by termination: no bootstrap
    assert (float(reward), float(discount), int(last)) == (2.0, 0.0, 1)
    reward, discount, last = replay.nstep_return(r, ends, none, 0.5)  # by the time limit: bootstrap
    assert (float(reward), float(discount), int(last)) == (2.0, 0.25, 1)


def test_window_gives_the_oldest_steps_nstep_transition():
    n, num = 2, 2
    step = lambda t, done: replay.Step(  # noqa: E731
        obs=jnp.full((num, 1), float(t)), action=jnp.full((num, 1), 10.0 + t), reward=jnp.full((num,), 1.0),
        done=jnp.asarray(done, jnp.float32), terminated=jnp.asarray(done, jnp.float32),
        final_obs=jnp.full((num, 1), t + 0.5))
    window = replay.init_window(step(0, [0, 0]), n)
    window = replay.push(window, step(0, [1, 0]))  # env 0 terminates at its first step
    assert not bool(replay.is_full(window))
    window = replay.push(window, step(1, [0, 0]))
    assert bool(replay.is_full(window))
    t = replay.oldest_transition(window, 0.9)
    np.testing.assert_array_equal(t.obs[:, 0], [0.0, 0.0])
    np.testing.assert_array_equal(t.action[:, 0], [10.0, 10.0])
    np.testing.assert_allclose(t.reward, [1.0, 1.9])
    np.testing.assert_allclose(t.discount, [0.0, 0.81])
    np.testing.assert_array_equal(t.next_obs[:, 0], [0.5, 1.5])  # env 0: before its autoreset


# ----------------------------------------------------------------------------- loss arithmetic


def test_clipped_double_q_target_and_critic_loss_by_hand():
    y = off_policy.clipped_double_q_target(jnp.asarray(1.0), jnp.asarray(0.5), jnp.asarray([3.0, 2.0]),
                                           jnp.asarray(-1.0), jnp.asarray(0.5))
    assert float(y) == 1.0 + 0.5 * (2.0 + 0.5)  # min of the twins, plus SAC's -alpha log pi
    td3 = off_policy.clipped_double_q_target(jnp.asarray(1.0), jnp.asarray(0.0), jnp.asarray([3.0, 2.0]),
                                             jnp.asarray(0.0), jnp.asarray(0.0))
    assert float(td3) == 1.0  # terminal: no bootstrap
    assert float(off_policy.scalar_critic_loss(jnp.asarray([1.0, 3.0]), jnp.asarray(2.0))) == 1.0


def test_categorical_projection_by_hand():
    atoms = jnp.asarray([-1.0, 0.0, 1.0])
    probs = jnp.asarray([0.2, 0.5, 0.3])
    # r + d z = [0, 0.5, 1]: atom 0 -> atom 1; 0.5 splits half-half between atoms 1 and 2; 1 -> atom 2.
    out = off_policy.categorical_projection(probs, jnp.asarray(0.5), jnp.asarray(0.5), atoms)
    np.testing.assert_allclose(out, [0.0, 0.2 + 0.25, 0.25 + 0.3], atol=1e-7)
    # Targets beyond v_max are clipped onto it; a zero discount puts all mass near r.
    np.testing.assert_allclose(
        off_policy.categorical_projection(probs, jnp.asarray(2.0), jnp.asarray(1.0), atoms), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(
        off_policy.categorical_projection(probs, jnp.asarray(-0.25), jnp.asarray(0.0), atoms), [0.25, 0.75, 0.0],
        atol=1e-7)


def test_categorical_loss_sac_actor_and_temperature_by_hand():
    loss = off_policy.categorical_critic_loss(jnp.zeros((2, 3)), jnp.asarray([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(loss, 2.0 * math.log(3.0), rtol=1e-6)
    actor = off_policy.sac_actor_objective(jnp.asarray([1.0, 2.0]), jnp.asarray(-0.5), jnp.asarray(0.2))
    np.testing.assert_allclose(actor, 0.2 * -0.5 - 1.0, rtol=1e-6)
    # d/dlog_alpha of alpha * (-log pi - target) = alpha * (-log pi - target): entropy 0.5 above
    # the target -2 + 2.5 ... here -log pi = 1, target -2: positive, so gradient descent lowers alpha.
    value, grad = jax.value_and_grad(off_policy.alpha_objective)(jnp.log(0.5), jnp.asarray(-1.0), -2.0)
    np.testing.assert_allclose([value, grad], [0.5 * 3.0, 0.5 * 3.0], rtol=1e-6)


def test_polyak_update_is_exact():
    target = {"a": jnp.asarray([0.0, 8.0]), "b": jnp.asarray(2.0)}
    online = {"a": jnp.asarray([4.0, 0.0]), "b": jnp.asarray(6.0)}
    out = off_policy.polyak(target, online, 0.25)
    chex.assert_trees_all_equal(out, {"a": jnp.asarray([1.0, 6.0]), "b": jnp.asarray(3.0)})
    chex.assert_trees_all_equal(off_policy.polyak(target, online, 1.0), online)


def _constant_critic(params, q1, q2):
    """Twin critic params (leaves (2, ...)) that output q1 and q2 whatever the input: zero kernels."""
    params = jax.tree.map(jnp.zeros_like, params)
    output = params["params"]["output"]
    output = {**output, "bias": output["bias"].at[:, 0].set(jnp.asarray([q1, q2]))}
    return {"params": {**params["params"], "output": output}}


@pytest.mark.parametrize("algorithm", ["td3", "sac"])
def test_losses_of_one_transition_with_constant_critics(algorithm):
    """Through the real networks: critics outputting constants give the hand-derived target and losses."""
    env = make_point_env()
    config = OffPolicyConfig(algorithm=algorithm, num_envs=2, batch_size=4, buffer_size=8, actor_hidden_sizes=(4,),
                             critic_hidden_sizes=(4,), init_alpha=0.5, policy_noise=0.3)
    trainer = make_off_policy_train(env, config, num_iterations=1)
    state = trainer.init(jax.random.key(0))
    static = off_policy._Static(
        env=env, config=config, actor=off_policy.make_actor(config, 4, 2), critic=off_policy.make_critic(config, 4, 2),
        atoms=jnp.zeros((1,)), policy_optimizer=None, critic_optimizer=None, alpha_optimizer=None,
        target_entropy=-2.0)
    critics = _constant_critic(state.critic_params, 3.0, 2.0)
    learner = off_policy._Learner(**{n: getattr(state, n) for n in off_policy._LEARNER_FIELDS}).replace(
        target_critic_params=critics, critic_params=critics)
    t = replay.Transition(obs=jnp.ones((4,)), action=jnp.asarray([0.5, -0.5]), reward=jnp.asarray(1.0),
                          discount=jnp.asarray(0.5), next_obs=jnp.ones((4,)))
    y = off_policy.critic_target(static, learner, t, jax.random.key(1))
    if algorithm == "td3":
        assert float(y) == 1.0 + 0.5 * 2.0
    else:  # y = r + d (min Q' - alpha log pi(a'|s')) with a' drawn from the same key
        _, log_prob = off_policy._actor_action(static, learner.policy_params, t.next_obs, jax.random.key(1))
        np.testing.assert_allclose(y, 1.0 + 0.5 * (2.0 - 0.5 * log_prob), rtol=1e-6)
    loss, q = off_policy.critic_loss(static, critics, t, jnp.asarray(2.5))
    assert (float(loss), float(q)) == (0.5 * 0.25 + 0.5 * 0.25, 2.5)
    actor, log_prob = off_policy.actor_loss(static, learner.policy_params, critics, learner.log_alpha, t.obs,
                                            jax.random.key(2))
    if algorithm == "td3":
        assert float(actor) == -3.0 and float(log_prob) == 0.0  # -Q_1
    else:
        np.testing.assert_allclose(actor, 0.5 * log_prob - 2.0, rtol=1e-6)


# ----------------------------------------------------------------------------- the trainer


SMALL = OffPolicyConfig(
    num_envs=4, batch_size=16, buffer_size=32, learning_starts=8, updates_per_iteration=2, n_step=2,
    actor_hidden_sizes=(8,), critic_hidden_sizes=(8,), num_eval_envs=4,
)


def test_validate_names_the_field():
    for change, field in [({"algorithm": "ddpg"}, "algorithm"), ({"num_envs": 0}, "num_envs"),
                          ({"buffer_size": 2}, "buffer_size"), ({"tau": 0.0}, "tau"), ({"gamma": 1.5}, "gamma"),
                          ({"v_max": -300.0}, "v_max"), ({"exploration_noise_max": 0.0}, "exploration_noise_max"),
                          ({"activation": "relu"}, "activation"), ({"compute_dtype": "float16"}, "compute_dtype"),
                          ({"learning_starts": -1}, "learning_starts"), ({"num_atoms": 1}, "num_atoms")]:
        with pytest.raises(ValueError, match=f"^{field}: "):
            dataclasses.replace(SMALL, **change).validate()
    with pytest.raises(ValueError, match="^devices: "):
        SMALL.check_devices(2)


@pytest.mark.parametrize("algorithm,distributional,dtype", [("td3", False, "float32"), ("sac", True, "bfloat16")])
def test_iteration_shapes_finite_compiles_once_and_is_deterministic(algorithm, distributional, dtype):
    env = make_point_env(episode_length=5)
    config = dataclasses.replace(SMALL, algorithm=algorithm, distributional=distributional, num_atoms=11,
                                 v_min=-10.0, v_max=0.0, compute_dtype=dtype)
    trainer = make_off_policy_train(env, config, num_iterations=10)
    state = trainer.init(jax.random.key(0))
    shapes = jax.tree.map(lambda x: (x.shape, x.dtype), state)
    twin = jax.tree.map(jnp.copy, state)
    traces = env.trace_count[0]
    seen = []
    for _ in range(12):
        state, metrics = trainer.iteration(state)
        seen.append(metrics)
    assert env.trace_count[0] - traces == 1  # one trace, one compile
    assert jax.tree.map(lambda x: (x.shape, x.dtype), state) == shapes
    chex.assert_tree_all_finite(helpers.leaves_with_key_data(state))
    chex.assert_tree_all_finite(seen)
    assert int(state.iteration) == 12
    # n_step 2: the first insert is at iteration 2; 4 per iteration after, capacity 32.
    assert [float(m["train/buffer_size"]) for m in seen[:3]] == [0.0, 4.0, 8.0]
    assert int(state.replay.size) == 32
    # Learning starts once 8 transitions are in: iteration 3 (index 2); 2 gradient steps each.
    assert float(seen[1]["train/gradient_steps"]) == 0.0 and float(seen[2]["train/gradient_steps"]) == 2.0
    assert int(state.gradient_steps) == 2 * 10
    assert float(seen[4]["train/episodes_finished"]) == 4.0  # 5-step episodes, 4 envs
    for name in ("critic_loss", "q", "actor_loss", "entropy", "episode_reward", "mean_reward_per_step"):
        assert seen[-1][f"train/{name}"].shape == ()
    # Mixed precision keeps parameters (and so checkpoints) float32.
    assert {x.dtype for x in jax.tree.leaves((state.policy_params, state.critic_params))} == {jnp.dtype("float32")}
    if algorithm == "sac":
        assert state.target_policy_params is None and state.log_alpha.shape == ()
    else:
        assert state.log_alpha is None
    twin, twin_metrics = trainer.iteration(twin)
    chex.assert_trees_all_equal(twin_metrics, seen[0])
    for _ in range(11):
        twin, _ = trainer.iteration(twin)
    chex.assert_trees_all_equal(helpers.leaves_with_key_data(twin), helpers.leaves_with_key_data(state))
    evaluation = trainer.evaluate(state, jax.random.key(3))
    assert float(evaluation["eval/episode_length"]) == 5.0
    chex.assert_trees_all_equal(evaluation, trainer.evaluate(state, jax.random.key(3)))


def test_policy_fn_is_deterministic_without_key_and_bundle_holds_the_actor():
    env = make_point_env()
    for algorithm in ("td3", "sac"):
        trainer = make_off_policy_train(env, dataclasses.replace(SMALL, algorithm=algorithm), num_iterations=1)
        state = trainer.init(jax.random.key(0))
        params = policy_bundle(state)
        assert params.policy is state.policy_params and params.normalizer is state.normalizer
        layers = params.policy["params"]
        assert set(layers) == {"hidden_0", "output"}  # the layout export reads
        assert layers["output"]["kernel"].shape == (8, 2 * env.action_size if algorithm == "sac" else env.action_size)
        obs = jnp.ones((3, env.observation_size))
        a = trainer.policy_fn(params, obs, None)
        chex.assert_trees_all_equal(a, trainer.policy_fn(params, obs, None))
        sampled = trainer.policy_fn(params, obs, jax.random.key(1))
        assert a.shape == sampled.shape == (3, 2) and not np.allclose(a, sampled)
        assert float(jnp.max(jnp.abs(sampled))) <= 1.0


def test_seeds_batch_in_one_program():
    env = make_point_env(episode_length=5)
    trainer = make_off_policy_train(env, SMALL, num_iterations=4, num_seeds=2)
    state = trainer.init(jax.random.split(jax.random.key(0), 2))
    for _ in range(4):
        state, metrics = trainer.iteration(state)
    assert state.iteration.shape == (2,) and metrics["train/critic_loss"].shape == (2,)
    assert not np.array_equal(state.env_state.pos[0], state.env_state.pos[1])


@pytest.mark.parametrize("algorithm", ["td3", "sac"])
def test_learning_point_mass(algorithm):
    env = make_point_env(episode_length=20)
    config = OffPolicyConfig(
        algorithm=algorithm, num_envs=16, batch_size=256, buffer_size=20_000, learning_starts=512,
        updates_per_iteration=2, n_step=1, gamma=0.9, tau=0.05, actor_learning_rate=1e-3,
        critic_learning_rate=1e-3, alpha_learning_rate=1e-3, init_alpha=0.1, exploration_noise_min=0.1,
        exploration_noise_max=0.3, actor_hidden_sizes=(32, 32), critic_hidden_sizes=(64, 64), num_eval_envs=64,
    )
    num_iterations = 800
    trainer = make_off_policy_train(env, config, num_iterations=num_iterations)
    state = trainer.init(jax.random.key(0))
    eval_key = jax.random.key(123)
    before = float(trainer.evaluate(state, eval_key)["eval/episode_reward"])
    start = time.time()
    for _ in range(num_iterations):
        state, metrics = trainer.iteration(state)
    after = float(trainer.evaluate(state, eval_key)["eval/episode_reward"])
    print(f"{algorithm}: eval {before:.2f} -> {after:.2f}; {time.time() - start:.1f}s")
    assert after > before + 0.5 * abs(before) and after > -8.0


# ----------------------------------------------------------------------------- the runner


def _run_config(algorithm, num_timesteps, **changes):
    from jaxhum.run import config as run_config

    off = OffPolicyConfig(num_envs=4, batch_size=16, buffer_size=64, learning_starts=16, updates_per_iteration=2,
                          n_step=2, actor_hidden_sizes=(8,), critic_hidden_sizes=(8,), num_eval_envs=2)
    fields = dict(env_name=helpers.SLIDER_TASK, env={"episode_length": 10}, algorithm=algorithm, off_policy=off,
                  num_timesteps=num_timesteps, log_every=4 * 10, eval_every=4 * 20, checkpoint_every=4 * 20,
                  keep_checkpoints=5)
    config = run_config.RunConfig(**{**fields, **changes})
    return run_config.validate(config)


def test_run_config_chooses_the_algorithm_and_refuses_in_one_line():
    from jaxhum.config import ConfigError
    from jaxhum.run import config as run_config

    with helpers.slider_task():
        config = _run_config("sac", 400)
        assert config.off_policy.algorithm == "sac" and run_config.steps_per_iteration(config) == 4
        assert run_config.num_iterations(config) == 100
        assert _run_config("ppo", 400).algorithm == "ppo"  # the default's hyperparameters untouched
        assert run_config.RunConfig().algorithm == "ppo"
        with pytest.raises(ConfigError, match="^algorithm: must be one of ppo, sac, td3, got 'ddpg'$"):
            _run_config("ddpg", 400)
        with pytest.raises(ConfigError, match="^off_policy.tau: "):
            run_config.validate(dataclasses.replace(
                _run_config("td3", 400), off_policy=dataclasses.replace(SMALL, tau=2.0)))
        architecture = run_config.policy_architecture(config)
        assert architecture.hidden_sizes == (8,) and architecture.normalize_observations
    schema = run_config.json_schema()["properties"]
    assert schema["algorithm"]["default"] == "ppo" and schema["off_policy"]["properties"]["tau"]["default"] == 0.1
    assert all(field.get("description") for field in schema["off_policy"]["properties"].values())


@pytest.mark.parametrize("algorithm", ["td3", "sac"])
def test_stopped_and_resumed_run_equals_the_uninterrupted_one_bit_for_bit(tmp_path, algorithm):
    """The whole off-policy state (replay buffer, critics, targets, optimisers, keys) is checkpointed:
    a run that ends at step 80 and is resumed to step 160 ends exactly as one that ran through."""
    from jaxhum.run import checkpoint, finetune
    from jaxhum.run import config as run_config
    from jaxhum.run import loop as run_loop

    with helpers.slider_task():
        # TD3's runs evaluate (which must not perturb training); SAC's skip that compile.
        config = _run_config(algorithm, 160, eval_every=4 * 20 if algorithm == "td3" else 0)
        trainer = run_config.build_trainer(config)
        whole = run_loop.train(config, tmp_path / "whole", progress="none", trainer=trainer)
        assert whole.exit_code == 0 and whole.step == 160
        first = run_loop.train(dataclasses.replace(config, num_timesteps=80), tmp_path / "resumed", progress="none",
                               trainer=trainer)
        assert first.step == 80
        again = run_loop.train(config, tmp_path / "resumed", resume=True, progress="none", trainer=trainer)
        assert again.step == 160
        reference = helpers.checkpoint_leaves(tmp_path / "whole", 160)
        assert any("replay" in path for path in reference) and any("target_critic" in path for path in reference)
        assert helpers.checkpoint_leaves(tmp_path / "resumed", 160) == reference
        state, saved = checkpoint.restore(tmp_path / "whole")
        assert saved.algorithm == algorithm and int(state.replay.size) == 64
        loaded = checkpoint.load_run(tmp_path / "whole")  # what evaluation, export and sim2sim read
        obs = jnp.zeros((2, 3))
        np.testing.assert_array_equal(loaded.act(loaded.params, obs), trainer.policy_fn(loaded.params, obs, None))
        # init_from: actor, critics, targets and normalizer from the run; buffer, optimisers, envs fresh.
        tuned = dataclasses.replace(config, init_from=str(tmp_path / "whole"))
        assert finetune.check_config(tuned) == 160
        fresh = finetune.init_state(trainer, tuned, jax.random.key(7))
        chex.assert_trees_all_equal(fresh.critic_params, state.critic_params)
        chex.assert_trees_all_equal(fresh.policy_params, state.policy_params)
        assert int(fresh.replay.size) == 0 and int(fresh.iteration) == 0


@pytest.mark.parametrize("algorithm", ["td3", "sac"])
def test_export_arrays_give_the_jax_actor_with_numpy(algorithm):
    """export.policy_arrays + the numpy runner (deploy.Policy) reproduce the off-policy actor."""
    import types

    from jaxhum.run import config as run_config
    from jaxhum.tools import deploy, export

    with helpers.slider_task():
        config = _run_config(algorithm, 400)
        trainer = run_config.build_trainer(config)
        state = trainer.init(jax.random.key(0))
    state = state.replace(normalizer=state.normalizer.replace(mean=jnp.asarray([0.1, -0.2, 0.3]),
                                                              std=jnp.asarray([2.0, 0.5, 1.0])))
    spec = types.SimpleNamespace(ctrl_offset=[0.0], ctrl_scale=[1.0], ctrl_min=[-1.0], ctrl_max=[1.0],
                                 actuator_ids=[0])
    run = types.SimpleNamespace(config=config, env=types.SimpleNamespace(deploy=spec, action_size=1),
                                params=policy_bundle(state))
    policy = deploy.Policy(export.policy_arrays(run))
    obs = np.asarray(jax.random.normal(jax.random.key(1), (5, 3)))
    with jax.default_matmul_precision("highest"):
        expected = trainer.policy_fn(policy_bundle(state), jnp.asarray(obs), None)
    np.testing.assert_allclose(policy(obs), expected, atol=1e-5)


def test_command_line_chooses_the_algorithm_and_num_envs_follows_it(tmp_path):
    from experiments import humanoid_run
    from jaxhum.run import main as run_main

    with helpers.slider_task():
        prepared = run_main.prepare(humanoid_run.get_config, [
            "--preset", "cpu", "--num-envs", "8", "--out", str(tmp_path / "run"), "--set",
            f"env_name={helpers.SLIDER_TASK}", "algorithm=sac", "off_policy.buffer_size=64"], "humanoid_run", ("cpu",))
    config = prepared.config
    assert (config.algorithm, config.off_policy.algorithm, config.off_policy.num_envs) == ("sac", "sac", 8)


def test_job_service_accepts_sac_and_td3_in_any_case(tmp_path):
    """POST /reinforcement-learning in-process (schemathesis's ASGI client; the job's program is a
    stub that records its command line): policy_type SAC / td3 run `algorithm=sac|td3`."""
    pytest.importorskip("fastapi")
    schemathesis = pytest.importorskip("schemathesis")
    from jaxhum.jobs.app import create_app
    from jaxhum.jobs.limits import Limits

    started = []
    app = create_app(tmp_path / "data", limits=Limits(max_envs=64), poll_interval=0.05,
                     program=lambda task, args: started.append(list(args)) or ["true"])
    submit = schemathesis.openapi.from_asgi("/openapi.json", app)["/reinforcement-learning"]["POST"]

    def post(body):
        response = submit.Case(body=body, media_type="application/json").call()
        return response.status_code, response.json()

    tiny = ["off_policy.num_envs=4", "off_policy.buffer_size=64", "off_policy.actor_hidden_sizes=8",
            "off_policy.critic_hidden_sizes=8"]
    ok = {"task": "humanoid_run", "policy_type": "sac", "num_iterations": 3, "preset": "cpu", "overrides": tiny}
    assert post(ok)[0] == 201 and post({**ok, "policy_type": "Td3"})[0] == 201
    deadline = time.monotonic() + 60  # the second job starts once the first one's process has ended
    while len(started) < 2 and time.monotonic() < deadline:
        app.state.manager.tick()
        time.sleep(0.05)
    assert [args[len(tiny)] for args in started] == ["algorithm=sac", "algorithm=td3"]
    assert all(args[args.index("--num-timesteps") + 1] == "12" for args in started)  # 3 iterations x 4 envs
    assert post({**ok, "policy_type": "A2C"}) == (
        400, {"detail": "policy_type: must be one of PPO, SAC, TD3, got 'A2C'"})
    assert post({**ok, "overrides": [*tiny, "algorithm=td3"]}) == (
        400, {"detail": "algorithm: cannot be set as an override (use the request's policy_type)"})
    assert post({**ok, "overrides": ["off_policy.num_envs=128"]}) == (
        400, {"detail": "off_policy.num_envs: must be at most 64 on this server (--max-envs), got 128"})


def test_sigterm_then_resume_through_the_command_line_is_bit_exact(tmp_path, subprocess_env):
    """As tests/test_resume.py does for PPO, with real processes: a TD3 run of the slider stopped by
    SIGTERM after its first checkpoint and resumed ends on the uninterrupted run's state, bit for bit.
    The reference runs in-process first and fills the shared compilation cache the processes load."""
    import signal
    import subprocess
    import sys

    from experiments import humanoid_run
    from jaxhum.run import config as run_config
    from jaxhum.run import loop as run_loop
    from jaxhum.run import main as run_main

    cli = pathlib.Path(__file__).with_name("slider_cli.py")
    total = 1000 * 4
    argv = ["--preset", "cpu", "--num-envs", "4", "--num-timesteps", str(total), "--checkpoint-every", str(100 * 4),
            "--progress", "none", "--set", f"env_name={helpers.SLIDER_TASK}", "algorithm=td3", "env.episode_length=20",
            "off_policy.buffer_size=256", "off_policy.batch_size=16", "off_policy.learning_starts=32",
            "off_policy.actor_hidden_sizes=8", "off_policy.critic_hidden_sizes=8", "off_policy.num_eval_envs=2",
            "eval_every=0", "log_every=400", "keep_checkpoints=3"]
    with helpers.slider_task():
        prepared = run_main.prepare(humanoid_run.get_config, [*argv, "--out", str(tmp_path / "ref")], "humanoid_run",
                                    humanoid_run.PRESETS)
        assert run_loop.train(prepared.config, prepared.run_dir, progress="none",
                              trainer=run_config.build_trainer(prepared.config)).exit_code == 0
    run_dir, log = tmp_path / "term", tmp_path / "term.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(cli), *argv, "--out", str(run_dir)], env=subprocess_env,
                                stdout=out, stderr=subprocess.STDOUT)
    checkpoints = run_dir / "checkpoints"
    deadline = time.monotonic() + 300
    while not (checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 128 + signal.SIGTERM, log.read_text()[-3000:]
    resumed = subprocess.run([sys.executable, str(cli), "--resume", str(run_dir), "--progress", "none"],
                             env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert helpers.checkpoint_leaves(run_dir, total) == helpers.checkpoint_leaves(tmp_path / "ref", total)


def test_fresh_starts_are_redrawn_every_refresh_starts_every_iterations():
    """For an env that holds its next episode's start (joystick, reach), the trainer redraws the
    starts on iterations 0, k, 2k, ... (the slider of tests/helpers.py, marked fresh_starts)."""
    env = dataclasses.replace(helpers.make_slider_env(episode_length=10), fresh_starts=True)
    config = dataclasses.replace(SMALL, refresh_starts_every=2, num_eval_envs=2)
    trainer = make_off_policy_train(env, config, num_iterations=4)
    state = trainer.init(jax.random.key(0))
    starts = [np.asarray(state.env_state.first_obs)]
    for _ in range(4):
        state, metrics = trainer.iteration(state)
        starts.append(np.asarray(state.env_state.first_obs))
    chex.assert_tree_all_finite(metrics)
    changed = [not np.array_equal(a, b) for a, b in zip(starts[:-1], starts[1:])]
    assert changed == [True, False, True, False]  # refreshed by iterations 0 and 2

"""walk on jh1: smoke under jit(vmap), reward terms by hand, termination, action mapping, reset_to.

The robot's MJX compile is slow on the CPU: every compiled function is built once per module.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TraceCounter

import jaxhum
from jaxhum.envs import walk
from jaxhum.envs.terms import rewards

NUM_ENVS = 3
EPISODE_SECONDS = 0.1  # 5 control steps of 20 ms: truncation comes quickly


@pytest.fixture(scope="module")
def env():
    return jaxhum.envs.make("walk", episode_seconds=EPISODE_SECONDS)


@pytest.fixture(scope="module")
def idx(env):
    return env.robot.index(env.sim)


@pytest.fixture(scope="module")
def batched(env):
    reset = TraceCounter(jax.vmap(env.reset))
    step = TraceCounter(jax.vmap(env.step))
    return reset, jax.jit(reset), step, jax.jit(step)


@pytest.fixture(scope="module")
def first_batch(batched):
    _, reset, _, _ = batched
    return reset(jax.random.split(jax.random.PRNGKey(0), NUM_ENVS))


@pytest.fixture(scope="module")
def rollout(batched, first_batch):
    """Six steps with random actions: states after each step."""
    _, _, _, step = batched
    states, state = [], first_batch
    for i in range(6):
        action = jax.random.uniform(jax.random.PRNGKey(10 + i), (NUM_ENVS, 21), minval=-1.0, maxval=1.0)
        state = step(state, action)
        states.append(state)
    return states


def test_sizes_and_layout(env):
    a = len(env.robot.joint_names)
    assert env.action_size == a >= 21
    assert env.dt == pytest.approx(0.02)
    assert env.episode_length == 5
    assert jaxhum.envs.make_config("walk").episode_seconds * 50 == 1000  # 20 s of 20 ms steps
    names = [name for name, _ in env.observation_layout]
    assert names == ["joint_pos_from_home", "joint_vel", "gravity_in_imu", "heading_in_world", "imu_linear_velocity",
                     "imu_angular_velocity", "foot_contacts"]
    assert [size for _, size in env.observation_layout] == [a, a, 3, 2, 3, 3, 2]
    assert env.observation_size == 2 * a + 13


def test_smoke_jit_vmap_finite_no_retrace(batched, first_batch, rollout):
    reset_count, _, step_count, _ = batched
    assert reset_count.count == 1 and step_count.count == 1  # six steps, one trace
    for state in [first_batch, *rollout]:
        chex.assert_tree_all_finite((state.obs, state.reward, state.metrics))
        chex.assert_shape(state.obs, (NUM_ENVS, 55))
    assert set(rollout[0].metrics) >= {f"reward/{t}" for t in walk.DEFAULT_REWARD_WEIGHTS}
    # logged terms add up to the reward
    total = sum(v for k, v in rollout[0].metrics.items() if k.startswith("reward/"))
    np.testing.assert_allclose(total, rollout[0].reward, rtol=1e-5, atol=1e-5)


def test_reset_starts_at_home_with_bounded_noise(env, idx, first_batch):
    qpos = np.asarray(first_batch.data.qpos)
    noise = qpos[:, idx.qpos_adr] - idx.home_joint_pos
    assert np.all(np.abs(noise) <= env.config.reset_noise_scale + 1e-6)
    assert np.abs(noise).max() > 0  # noise is drawn
    assert not np.allclose(noise[0], noise[1])  # per env
    np.testing.assert_allclose(qpos[:, :7], np.broadcast_to(idx.home_qpos[:7], (NUM_ENVS, 7)), atol=1e-6)


def test_truncation_after_episode_seconds(rollout):
    done = np.stack([np.asarray(s.done) for s in rollout])
    truncated = np.stack([np.asarray(s.truncated) for s in rollout])
    assert np.all(done[4] == 1.0) and np.all(truncated[4] == 1.0)  # the 5th step ends it
    assert np.all(done[:4] == 0.0)
    assert np.all(np.asarray(rollout[4].step_count) == 0) and np.all(np.asarray(rollout[5].step_count) == 1)


@pytest.fixture(scope="module")
def special_starts(env, idx, batched):
    """Three envs started with reset_to: (0) a displaced, moving pose, (1) home, (2) pelvis below the
    fall height, turned to face -x; then one step each with actions that sweep [-1.5, 1.5] (clipped to [-1, 1])."""
    _, _, _, step = batched
    nv = env.sim.mj_model.nv
    qpos = np.tile(np.asarray(idx.home_qpos, np.float32), (NUM_ENVS, 1))
    qpos[0, idx.qpos_adr] += np.linspace(-0.1, 0.1, env.action_size)
    qpos[0, 2] += 0.05
    qpos[2, 2] = 0.5 * walk.FALL_RATIO * idx.standing_height
    qpos[2, 3:7] = [0.0, 0.0, 0.0, 1.0]  # turned 180 deg about z (an exact unit quaternion): heading -x
    qvel = np.zeros((NUM_ENVS, nv), np.float32)
    qvel[0] = np.linspace(-0.3, 0.3, nv)
    keys = jax.random.split(jax.random.PRNGKey(3), NUM_ENVS)
    start = jax.jit(jax.vmap(env.reset_to))(keys, jnp.asarray(qpos), jnp.asarray(qvel))
    action = np.tile(np.linspace(-1.5, 1.5, env.action_size).astype(np.float32), (NUM_ENVS, 1))
    return qpos, qvel, start, action, step(start, jnp.asarray(action))


def test_reset_to_is_exact(env, idx, special_starts):
    qpos, qvel, state, _, _ = special_starts
    np.testing.assert_array_equal(np.asarray(state.data.qpos), qpos)
    np.testing.assert_array_equal(np.asarray(state.data.qvel), qvel)
    a = env.action_size
    np.testing.assert_allclose(np.asarray(state.obs[0, :a]), qpos[0, idx.qpos_adr] - idx.home_joint_pos, atol=1e-6)
    np.testing.assert_allclose(np.asarray(state.obs[0, a:2 * a]), qvel[0, idx.dof_adr], atol=1e-6)
    assert np.all(np.asarray(state.step_count) == 0) and np.all(np.asarray(state.done) == 0)
    # At home: joints at 0, gravity straight down in the IMU frame, both feet on the floor.
    np.testing.assert_allclose(np.asarray(state.obs[1, :2 * a]), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(state.obs[1, 2 * a:2 * a + 3]), [0, 0, -1], atol=1e-3)
    np.testing.assert_array_equal(np.asarray(state.obs[1, -2:]), [1.0, 1.0])
    # Heading (cos yaw, sin yaw): +x at home, -x for the env turned around.
    np.testing.assert_allclose(np.asarray(state.obs[1, 2 * a + 3:2 * a + 5]), [1.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(np.asarray(state.obs[2, 2 * a + 3:2 * a + 5]), [-1.0, 0.0], atol=1e-5)


def test_action_mapping_targets_home_plus_scaled_action(idx, special_starts):
    _, _, _, action, nxt = special_starts
    ctrl = np.asarray(nxt.data.ctrl)[1, idx.actuator_ids]  # env 1 did not end: its data is the step's
    expected = np.clip(idx.home_joint_pos + idx.action_scale * np.clip(action[1], -1, 1),
                       idx.joint_range[:, 0], idx.joint_range[:, 1])
    np.testing.assert_allclose(ctrl, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(nxt.last_action[1]), np.clip(action[1], -1, 1))
    # energy = -0.005 * sum(a^2) of the clipped action
    np.testing.assert_allclose(float(nxt.metrics["reward/energy"][1]),
                               -0.005 * np.sum(np.clip(action[1], -1, 1) ** 2), rtol=1e-5)


def test_fall_terminates_and_upright_pays_minus_ten(special_starts):
    _, _, _, _, nxt = special_starts
    done, fall = np.asarray(nxt.done), np.asarray(nxt.metrics["fall"])
    assert done[2] == 1.0 and fall[2] == 1.0 and np.asarray(nxt.truncated)[2] == 0.0
    assert float(nxt.metrics["reward/upright"][2]) == -10.0
    assert done[1] == 0.0 and float(nxt.metrics["reward/upright"][1]) == 1.0
    assert int(nxt.step_count[2]) == 0  # autoreset


def test_reward_terms_hand_derived():
    # forward_velocity: the root's world x-velocity.
    assert float(rewards.torso_x_velocity(root_linvel=jnp.array([1.5, -2.0, 0.3]))) == 1.5
    # upright: +1 above the height, -10 at or below it.
    assert float(rewards.upright_bonus(torso_height=jnp.float32(0.6), upright_height=0.45)) == 1.0
    assert float(rewards.upright_bonus(torso_height=jnp.float32(0.45), upright_height=0.45)) == -10.0
    assert float(rewards.upright_bonus(torso_height=jnp.float32(0.2), upright_height=0.45)) == -10.0
    # energy: sum of squared actions (weight -0.005 in the task).
    assert float(rewards.action_l2(action=jnp.array([0.5, -1.0, 0.0]))) == pytest.approx(1.25)
    # orientation: -(|roll| + |pitch|).
    assert float(rewards.tilt(roll=jnp.float32(-0.2), pitch=jnp.float32(0.1))) == pytest.approx(-0.3)


def test_roll_pitch_from_quaternion():
    for roll, pitch in [(0.0, 0.0), (0.3, 0.0), (0.0, -0.4), (0.2, 0.25)]:
        # q = q_z(yaw) q_y(pitch) q_x(roll), yaw 0.7 must not matter.
        yaw = 0.7
        cr, sr = math.cos(roll / 2), math.sin(roll / 2)
        cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
        cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
        quat = jnp.array([
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ])
        r, p = walk.roll_pitch(quat)
        assert float(r) == pytest.approx(roll, abs=1e-5) and float(p) == pytest.approx(pitch, abs=1e-5)


def test_weights_chapter_values_and_overrides():
    config = jaxhum.envs.make_config("walk", reward_weights={"energy": -0.01})
    assert dict(config.reward_weights) == {"forward_velocity": 2.0, "upright": 1.0, "energy": -0.01,
                                           "orientation": 1.0}
    assert walk.DEFAULT_REWARD_WEIGHTS["energy"] == pytest.approx(-0.005)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"robot": "atlas"}, "robot"),
        ({"episode_seconds": 0.0}, "episode_seconds"),
        ({"fall_height": -1.0}, "fall_height"),
        ({"reward_weights": {"speed": 1.0}}, "reward_weights"),
    ],
)
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        jaxhum.envs.make_config("walk", **overrides)

"""After training: evaluation report, video, plots, export (ONNX, numpy runner), sim-to-sim.

One tiny run directory per module: a TrainState from `trainer.init` (no training: the checks
are about reproducing the policy exactly, not about its quality) with a non-trivial observation
normalizer, saved with `CheckpointStore` as the runner saves it. The MJX evaluation is computed
once and shared.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mujoco import mjx

from jaxhum import checkpoint, config as config_lib, evaluate, evaluation, export, plot, render, runs, sim2sim
from jaxhum.config import FrozenMapping
from jaxhum.rl.train import PPOConfig

EPISODE_LENGTH = 25
EPISODES = 3
PARITY_ATOL = 1e-5


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    ppo = PPOConfig(num_envs=2, unroll_length=2, num_minibatches=1, num_updates_per_batch=1,
                    policy_hidden_sizes=(16, 16), value_hidden_sizes=(8,), num_eval_envs=2)
    config = runs.RunConfig(env=FrozenMapping({"episode_length": EPISODE_LENGTH}), ppo=ppo, num_timesteps=4)
    trainer = runs.build_trainer(config)
    state = trainer.init(runs.train_keys(config)[0])
    size = state.normalizer.mean.shape[0]
    k_mean, k_std = jax.random.split(jax.random.key(7))
    # A normalizer far from identity, so that folding it into the exports is really tested.
    normalizer = state.normalizer.replace(
        count=jnp.float32(100.0),
        mean=0.3 * jax.random.normal(k_mean, (size,)),
        std=jax.random.uniform(k_std, (size,), minval=0.5, maxval=2.0),
    )
    state = state.replace(normalizer=normalizer)
    path = tmp_path_factory.mktemp("after") / "run"
    store = checkpoint.CheckpointStore(path)
    store.save(4, state, config_lib.to_json(config), {"iteration": 1})
    store.close()
    points = [{"step": s, "wall_s": s / 10, "eval/episode_reward": 10.0 + s, "eval/episode_length": 20.0,
               "eval/reward/alive": 5.0 * s, "eval/reward/ctrl_l2": -0.1 * s, "train/episode_reward": 1.0}
              for s in (4, 8, 12)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points) + '{"step": 16, "wal')
    return path


@pytest.fixture(scope="module")
def run(run_dir):
    return checkpoint.load_run(run_dir)


@pytest.fixture(scope="module")
def mjx_report(run):
    return evaluate.evaluate_run(run, EPISODES, seed=0)


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "policy"
    export.export(run, out)
    return out


def test_loading_a_run_does_not_import_the_training_loop(subprocess_env):
    code = ("import sys, jaxhum.checkpoint, jaxhum.evaluate, jaxhum.export, jaxhum.sim2sim, jaxhum.plot; "
            "assert 'jaxhum.runner' not in sys.modules, 'runner imported'; "
            "from jaxhum import runner, runs, checkpoint; "
            "assert runner.RunConfig is runs.RunConfig and runner.saved_config is checkpoint.saved_config")
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env)


def test_summarize_against_hand_numbers():
    stats = evaluation.EpisodeStats(
        episode_return=jnp.array([10.0, 20.0]), length=jnp.array([100.0, 50.0]),
        terminated=jnp.array([0.0, 1.0]), distance=jnp.array([3.0, 1.0]), work=jnp.array([300.0, 100.0]),
        nonfinite=jnp.zeros(2), tracking={"tracking/lin_vel": jnp.array([0.1, 0.3])},
    )
    r = evaluation.summarize(stats, dt=0.02, mass=40.0, tracking_bounds={"lin_vel": 0.2})
    assert r["forward_velocity"] == pytest.approx(4.0 / 3.0)  # 4 m over 150 steps of 20 ms
    assert r["work_per_metre"] == pytest.approx(100.0)
    assert r["cost_of_transport"] == pytest.approx(400.0 / (40.0 * 9.81 * 4.0))
    assert r["success_rate"] == 0.5 and r["tracking/lin_vel"] == pytest.approx(0.2)
    assert r["episode_return"] == 15.0 and r["episode_length"] == 75.0
    # A tracking error beyond its bound fails an episode that did not fall.
    tight = evaluation.summarize(stats, dt=0.02, mass=40.0, tracking_bounds={"lin_vel": 0.05})
    assert tight["success_rate"] == 0.0
    still = evaluation.summarize(stats.replace(distance=jnp.zeros(2)), dt=0.02, mass=40.0)
    assert still["work_per_metre"] is None and still["cost_of_transport"] is None


def test_episode_frames_cut_at_the_end():
    qpos = np.arange(6)[:, None]
    assert evaluation.episode_frames(qpos, np.array([0, 0, 1, 1, 1], bool)).ravel().tolist() == [0, 1, 2, 3]
    assert len(evaluation.episode_frames(qpos, np.zeros(5, bool))) == 6


def test_evaluation_report(run, mjx_report):
    r = mjx_report
    assert r["episodes"] == EPISODES and r["nonfinite_episodes"] == 0
    assert 1 <= r["episode_length"] <= EPISODE_LENGTH and 0.0 <= r["success_rate"] <= 1.0
    assert r["forward_velocity"] == pytest.approx(r["distance"] / (r["episode_length"] * EPISODES * run.env.dt))
    assert r["mass"] == pytest.approx(float(np.sum(run.env.sim.mj_model.body_mass)))
    assert r["work"] > 0.0 and math.isfinite(r["episode_return"])
    assert "forward velocity" in evaluate.format_table(r)


def test_numpy_observation_equals_mjx(run):
    """The task's numpy observation on native MjData equals the MJX one on the same state."""
    env = run.env
    rng = np.random.default_rng(0)
    qpos = np.asarray(env.sim.mj_model.qpos0) + rng.uniform(-0.2, 0.2, env.sim.mj_model.nq)
    qvel = rng.normal(0.0, 1.0, env.sim.mj_model.nv)
    state = jax.jit(env.reset_to)(jax.random.key(0), jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32))
    data = mjx.get_data(env.sim.mj_model, jax.device_get(state.data))
    host = env.deploy.host_observation(model=env.sim.mj_model, data=data, last_action=np.zeros(env.action_size))
    assert host.shape == (env.observation_size,) and host.dtype == np.float32
    # float32 (MJX) against the same float32 numbers read back into MjData: equal to rounding.
    np.testing.assert_allclose(host, np.asarray(state.obs), rtol=1e-6, atol=1e-6)
    assert sum(size for _, size in env.deploy.observation_layout) == env.observation_size


def _observations(run, count=64):
    rng = np.random.default_rng(1)
    random_obs = rng.normal(0.0, 3.0, (count, run.env.observation_size)).astype(np.float32)  # some beyond the clip
    real_obs = np.asarray(jax.jit(jax.vmap(run.env.reset))(jax.random.split(jax.random.key(3), 2)).obs)
    return np.concatenate([random_obs, real_obs])


def test_export_parity_onnx_and_numpy(run, exported):
    import onnxruntime

    obs = _observations(run)
    expected = np.asarray(jax.jit(run.act)(run.params, jnp.asarray(obs)))
    session = onnxruntime.InferenceSession(str(exported / "policy.onnx"), providers=["CPUExecutionProvider"])
    onnx_action = session.run(["action"], {"obs": obs})[0]
    from jaxhum.deploy import Policy

    numpy_action = Policy.load(str(exported / "policy.npz"))(obs)
    assert np.max(np.abs(onnx_action - expected)) <= PARITY_ATOL
    assert np.max(np.abs(numpy_action - expected)) <= PARITY_ATOL
    assert np.std(expected) > 0.05  # not a saturated or constant policy


def test_policy_json(run, exported):
    meta = json.loads((exported / "policy.json").read_text())
    layout = meta["observation_layout"]
    assert layout[0]["start"] == 0 and layout[-1]["stop"] == run.env.observation_size
    assert all(a["stop"] == b["start"] for a, b in zip(layout, layout[1:]))
    assert len(meta["joint_order"]) == len(meta["actuator_order"]) == run.env.action_size
    assert meta["control_dt"] == pytest.approx(run.env.dt) and meta["n_substeps"] == 5
    assert meta["onnx_opset"] == export.OPSET and len(meta["robot"]["home_pose"]) == run.env.action_size
    # The affine action map reproduces the task's ctrl = lo + (a + 1) (hi - lo) / 2.
    lo, hi = np.asarray(meta["robot"]["ctrl_range"]).T
    a = np.linspace(-1, 1, run.env.action_size)
    ctrl = np.asarray(meta["action"]["ctrl_offset"]) + np.asarray(meta["action"]["ctrl_scale"]) * a
    np.testing.assert_allclose(ctrl, lo + (a + 1) * (hi - lo) / 2, atol=1e-6)


def test_deploy_runs_with_numpy_alone(exported, subprocess_env):
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, deploy; "
            "p = deploy.Policy.load(sys.argv[1] + '/policy.npz'); a = p(np.zeros(p.obs_size, np.float32)); "
            "assert a.shape == (p.action_size,), a.shape; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'jaxhum', 'mujoco', 'flax', 'onnx')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, str(exported)], check=True, env=subprocess_env, cwd="/")


def test_sim2sim_native_mujoco_matches_mjx(run, exported, mjx_report):
    from jaxhum.deploy import Policy

    report = sim2sim.compare(run, Policy.load(str(exported / "policy.npz")), EPISODES, 0, mjx_report=mjx_report)
    native, ref = report["mujoco"], report["mjx"]
    # Same model, same starts, same policy (to 1e-5): the engines agree up to float32 vs float64.
    assert native["episode_length"] == pytest.approx(ref["episode_length"], abs=1.0)
    assert native["success_rate"] == ref["success_rate"]
    assert native["forward_velocity"] == pytest.approx(ref["forward_velocity"], abs=0.02)
    assert "MuJoCo" in sim2sim.format_table(report)


def test_video_frames_are_rendered(run, tmp_path):
    try:
        render.check_gl()
    except render.RenderError as err:
        pytest.skip(str(err))
    model = run.env.sim.mj_model
    qpos = np.repeat(np.asarray(model.qpos0)[None], 3, axis=0)
    qpos[:, 0] += [0.0, 0.5, 1.0]  # walk the root forward: the tracking camera follows
    qpos[1:, 3:7] = [0.924, 0.0, 0.383, 0.0]  # lean the torso in the later frames
    frames = render.render_frames(model, qpos, height=96, width=128)
    assert frames.shape == (3, 96, 128, 3) and frames.dtype == np.uint8
    assert all(f.std() > 10.0 for f in frames)  # not blank
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 1.0
    path = tmp_path / "clip.mp4"
    render.write_video(model, qpos, path, fps=1.0 / run.env.dt, height=96, width=128)
    import imageio.v2 as imageio

    assert len(imageio.mimread(str(path))) == 3


def test_plot(run_dir, tmp_path):
    out = tmp_path / "curves.png"
    keys = plot.plot([run_dir, run_dir], out)
    assert keys == ["eval/episode_reward", "eval/episode_length", "eval/reward/alive", "eval/reward/ctrl_l2"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "module, argv, field",
    [
        (evaluate, ["/no/such/run"], "run_dir"),
        (evaluate, ["{run}", "--episodes", "0"], "episodes"),
        (evaluate, ["{run}", "--video", "out.gif"], "video"),
        (export, ["{run}", "--out", "{run}"], "out"),
        (sim2sim, ["{run}", "--export", "/no/such/dir"], "export"),
        (plot, ["{run}", "--out", "curves.jpg"], "out"),
        (plot, ["/no/such/run"], "run_dirs"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(module, argv, field, run_dir, capsys):
    code = module.main([a.format(run=run_dir) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: {field}: ") and "\n" not in err
    assert not (run_dir / "evaluation.json").exists()

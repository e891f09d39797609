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
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from jaxhum import config as config_lib
from jaxhum.config import FrozenMapping
from jaxhum.rl import networks
from jaxhum.rl.train import PPOConfig
from jaxhum.run import checkpoint
from jaxhum.run import config as run_config
from jaxhum.tools import episode_stats, evaluate, export, plot, render, sim2sim

EPISODE_LENGTH = 60  # longer than a fall takes, so no episode ends on a borderline step
EPISODES = 3
PARITY_ATOL = 1e-5


def _zeros_like(leaf):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(jnp.zeros(leaf.shape + (2,), jnp.uint32))
    return jnp.zeros(leaf.shape, leaf.dtype)


def make_run_dir(path, env_name, env):
    """A run directory with an untrained policy and a normalizer far from identity."""
    ppo = PPOConfig(num_envs=2, unroll_length=2, num_minibatches=1, num_updates_per_batch=1,
                    policy_hidden_sizes=(16, 16), value_hidden_sizes=(8,), num_eval_envs=2)
    config = run_config.RunConfig(env_name=env_name, env=FrozenMapping(env), ppo=ppo, num_timesteps=4)
    # Only the policy matters after training: the rest of the TrainState is zeros of the right
    # shapes (no env compile), the policy is freshly initialised.
    template = run_config.state_template(run_config.build_trainer(config), config)
    state = jax.tree.map(_zeros_like, template)
    env = run_config.build_env(config)
    net = networks.make_policy_network(env.observation_size, env.action_size, ppo.policy_hidden_sizes, ppo.activation)
    k_net, k_mean, k_std = jax.random.split(jax.random.key(7), 3)
    state = state.replace(policy_params=net.init(k_net))
    size = state.normalizer.mean.shape[0]
    # Folding the normalizer into the exports is only tested if it does something.
    normalizer = state.normalizer.replace(
        count=jnp.float32(100.0),
        mean=0.3 * jax.random.normal(k_mean, (size,)),
        std=jax.random.uniform(k_std, (size,), minval=0.5, maxval=2.0),
    )
    store = checkpoint.CheckpointStore(path)
    store.save(4, state.replace(normalizer=normalizer), config_lib.to_json(config), {"iteration": 1})
    store.close()
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = make_run_dir(tmp_path_factory.mktemp("after") / "run", "humanoid_run", {"episode_length": EPISODE_LENGTH})
    points = [{"step": s, "wall_s": s / 10, "eval/episode_reward": 10.0 + s, "eval/episode_length": 20.0,
               "eval/reward/alive": 5.0 * s, "eval/reward/ctrl_l2": -0.1 * s, "train/episode_reward": 1.0}
              for s in (4, 8, 12)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points) + '{"step": 16, "wal')
    return path


@pytest.fixture(scope="module", params=["humanoid_run", "walk", "joystick"])
def any_run(request, run, tmp_path_factory):
    """Every registered task: the humanoid_run run, and walk and joystick runs made here."""
    if request.param == "humanoid_run":
        return run
    name = request.param
    path = make_run_dir(tmp_path_factory.mktemp(name) / "run", name, {"episode_seconds": 0.5})
    return checkpoint.load_run(path)


@pytest.fixture(scope="module")
def run(run_dir):
    return checkpoint.load_run(run_dir)


@pytest.fixture(scope="module")
def mjx_report(run):
    return evaluate.evaluate_run(run, EPISODES, seed=0)


@pytest.fixture(scope="module")
def exported(any_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "policy"
    export.export(any_run, out)
    return out


def test_loading_a_run_does_not_import_the_training_loop(subprocess_env):
    code = ("import sys, jaxhum.run.checkpoint, jaxhum.tools.evaluate, jaxhum.tools.export, jaxhum.tools.sim2sim, "
            "jaxhum.tools.plot, jaxhum.tools.robustness, jaxhum.tools.falls; "
            "assert 'jaxhum.run.loop' not in sys.modules, 'the training loop was imported'; "
            "assert 'jaxhum.run.main' not in sys.modules, 'the experiment command line was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env)


def test_summarize_against_hand_numbers():
    stats = episode_stats.EpisodeStats(
        episode_return=jnp.array([10.0, 20.0]), length=jnp.array([100.0, 50.0]),
        terminated=jnp.array([0.0, 1.0]), distance=jnp.array([3.0, 1.0]), work=jnp.array([300.0, 100.0]),
        nonfinite=jnp.zeros(2), tracking={"tracking/lin_vel": jnp.array([0.1, 0.3])},
    )
    r = episode_stats.summarize(stats, dt=0.02, mass=40.0, tracking_bounds={"lin_vel": 0.2})
    assert r["forward_velocity"] == pytest.approx(4.0 / 3.0)  # 4 m over 150 steps of 20 ms
    assert r["work_per_metre"] == pytest.approx(100.0)
    assert r["cost_of_transport"] == pytest.approx(400.0 / (40.0 * 9.81 * 4.0))
    assert r["success_rate"] == 0.5 and r["tracking/lin_vel"] == pytest.approx(0.2)
    assert r["fall_rate"] == 0.5
    assert r["episode_return"] == 15.0 and r["episode_length"] == 75.0
    # A tracking error beyond its bound fails an episode that did not fall.
    tight = episode_stats.summarize(stats, dt=0.02, mass=40.0, tracking_bounds={"lin_vel": 0.05})
    assert tight["success_rate"] == 0.0
    still = episode_stats.summarize(stats.replace(distance=jnp.zeros(2)), dt=0.02, mass=40.0)
    assert still["work_per_metre"] is None and still["cost_of_transport"] is None


def test_episode_frames_cut_at_the_end():
    qpos = np.arange(6)[:, None]
    assert episode_stats.episode_frames(qpos, np.array([0, 0, 1, 1, 1], bool)).ravel().tolist() == [0, 1, 2, 3]
    assert len(episode_stats.episode_frames(qpos, np.zeros(5, bool))) == 6


def test_evaluation_report(run, mjx_report):
    r = mjx_report
    assert r["episodes"] == EPISODES and r["nonfinite_episodes"] == 0
    assert 1 <= r["episode_length"] <= EPISODE_LENGTH and 0.0 <= r["success_rate"] <= 1.0
    assert r["forward_velocity"] == pytest.approx(r["distance"] / (r["episode_length"] * EPISODES * run.env.dt))
    assert r["mass"] == pytest.approx(float(np.sum(run.env.sim.mj_model.body_mass)))
    assert r["work"] > 0.0 and math.isfinite(r["episode_return"])
    assert "forward velocity" in evaluate.format_table(r)


def test_numpy_observation_equals_mjx(any_run):
    """The task's numpy observation on native MjData equals the MJX one on the same state."""
    env = any_run.env
    rng = np.random.default_rng(0)
    qpos = np.array(env.sim.mj_model.qpos0)
    qpos[7:] += rng.uniform(-0.2, 0.2, env.sim.mj_model.nq - 7)  # joints only: the root quaternion stays unit
    qvel = rng.normal(0.0, 1.0, env.sim.mj_model.nv)
    state = jax.jit(env.reset_to)(jax.random.key(0), jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32))
    data = mjx.get_data(env.sim.mj_model, jax.device_get(state.data))
    command = {"command": np.asarray(state.info["command"])} if "command" in state.info else {}  # command tasks
    host = env.deploy.host_observation(model=env.sim.mj_model, data=data, last_action=np.zeros(env.action_size),
                                       **command)
    assert host.shape == (env.observation_size,) and host.dtype == np.float32
    # float32 (MJX) against the same float32 numbers read back into MjData: equal to rounding.
    np.testing.assert_allclose(host, np.asarray(state.obs), rtol=1e-6, atol=1e-6)
    assert sum(size for _, size in env.observation_layout) == env.observation_size


def _observations(run, count=64):
    rng = np.random.default_rng(1)
    random_obs = rng.normal(0.0, 3.0, (count, run.env.observation_size)).astype(np.float32)  # some beyond the clip
    # Real observations: the task's own, at its initial pose and at a perturbed one (the numpy
    # observation equals the MJX one, see test_numpy_observation_equals_mjx).
    model = run.env.sim.mj_model
    data = mujoco.MjData(model)
    real_obs = []
    for scale in (0.0, 0.3):
        data.qpos[:] = model.qpos0
        data.qpos[7:] += rng.uniform(-scale, scale, model.nq - 7)
        data.qvel[:] = rng.normal(0.0, scale, model.nv)
        mujoco.mj_forward(model, data)
        real_obs.append(run.env.deploy.host_observation(model=model, data=data))
    return np.concatenate([random_obs, real_obs])


def test_export_parity_onnx_and_numpy(any_run, exported):
    import onnxruntime

    run = any_run
    obs = _observations(run)
    expected = np.asarray(jax.jit(run.act)(run.params, jnp.asarray(obs)))
    session = onnxruntime.InferenceSession(str(exported / "policy.onnx"), providers=["CPUExecutionProvider"])
    onnx_action = session.run(["action"], {"obs": obs})[0]
    from jaxhum.tools.deploy import Policy

    numpy_action = Policy.load(str(exported / "policy.npz"))(obs)
    assert np.max(np.abs(onnx_action - expected)) <= PARITY_ATOL
    assert np.max(np.abs(numpy_action - expected)) <= PARITY_ATOL
    assert np.std(expected) > 0.05  # not a saturated or constant policy


def test_policy_json(any_run, exported):
    run = any_run
    meta = json.loads((exported / "policy.json").read_text())
    layout = meta["observation_layout"]
    assert layout[0]["start"] == 0 and layout[-1]["stop"] == run.env.observation_size
    assert all(a["stop"] == b["start"] for a, b in zip(layout, layout[1:]))
    assert len(meta["joint_order"]) == len(meta["actuator_order"]) == run.env.action_size
    assert meta["control_dt"] == pytest.approx(run.env.dt) and meta["n_substeps"] == 5
    assert meta["onnx_opset"] == export.OPSET and len(meta["robot"]["home_pose"]) == run.env.action_size
    a = np.linspace(-1, 1, run.env.action_size)
    ctrl = np.asarray(meta["action"]["ctrl_offset"]) + np.asarray(meta["action"]["ctrl_scale"]) * a
    ctrl = np.clip(ctrl, meta["action"]["ctrl_min"], meta["action"]["ctrl_max"])
    if run.config.env_name == "humanoid_run":  # the task's ctrl = lo + (a + 1) (hi - lo) / 2
        lo, hi = np.asarray(meta["robot"]["ctrl_range"]).T
        np.testing.assert_allclose(ctrl, lo + (a + 1) * (hi - lo) / 2, atol=1e-6)
    else:  # walk: target = home + action_scale * a within the joint range; PD gains from the robot
        robot = meta["robot"]
        np.testing.assert_allclose(ctrl, np.clip(np.asarray(robot["home_pose"]) + np.asarray(robot["action_scale"]) * a,
                                                 *np.asarray(robot["joint_range"]).T), atol=1e-6)
        assert len(robot["pd_gains"]["kp"]) == run.env.action_size


def test_deploy_runs_with_numpy_alone(exported, subprocess_env):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, deploy; "
        "p = deploy.Policy.load(sys.argv[1] + '/policy.npz'); a = p(np.zeros(p.obs_size, np.float32)); "
        "assert a.shape == (p.action_size,), a.shape; "
        "heavy = ('jax', 'jaxlib', 'jaxhum', 'mujoco', 'flax', 'onnx'); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(exported)], check=True, env=subprocess_env, cwd="/")


def test_sim2sim_native_mujoco_matches_mjx(run, mjx_report, tmp_path):
    from jaxhum.tools.deploy import Policy

    export.export(run, tmp_path)
    report = sim2sim.compare(run, Policy.load(str(tmp_path / "policy.npz")), EPISODES, 0, mjx_report=mjx_report)
    native, ref = report["mujoco"], report["mjx"]
    # Same model, same starts, same policy (to 1e-5): the engines agree up to float32 vs float64.
    assert native["episode_length"] == pytest.approx(ref["episode_length"], abs=1.0)
    assert native["success_rate"] == ref["success_rate"]
    assert native["forward_velocity"] == pytest.approx(ref["forward_velocity"], abs=0.02)
    assert "MuJoCo" in sim2sim.format_table(report)
    # A task without commands: no tracking figures.
    assert set(native) == {"success_rate", "fall_rate", "forward_velocity", "episode_length"}


def test_sim2sim_native_figures_hand_derived():
    """Native figures as `episode_stats.summarize` defines them: success needs no fall and every mean
    tracking error within its bound; tracking figures are the mean of the episodes' means."""
    native = [
        {"length": 10, "terminated": 0.0, "distance": 1.0, "tracking/vx": 0.1, "tracking/yaw": 0.1},
        {"length": 10, "terminated": 0.0, "distance": 2.0, "tracking/vx": 0.3, "tracking/yaw": 0.1},  # vx off
        {"length": 5, "terminated": 1.0, "distance": 0.0, "tracking/vx": 0.0, "tracking/yaw": 0.0},  # fell
        {"length": 15, "terminated": 0.0, "distance": 1.0, "tracking/vx": 0.1, "tracking/yaw": 0.3},  # yaw off
    ]
    figures = sim2sim.native_figures(native, dt=0.02, tracking_bounds={"vx": 0.15, "yaw": 0.2})
    assert figures["success_rate"] == 0.25 and figures["fall_rate"] == 0.25
    assert figures["forward_velocity"] == pytest.approx(4.0 / (40 * 0.02))
    assert figures["episode_length"] == 10.0
    assert figures["tracking/vx"] == pytest.approx(0.125) and figures["tracking/yaw"] == pytest.approx(0.125)
    assert sim2sim.native_figures(native, dt=0.02)["success_rate"] == 0.75  # no bounds: falls only
    nan = sim2sim.native_figures([{**native[0], "tracking/vx": math.nan}], dt=0.02, tracking_bounds={"vx": 0.15})
    assert nan["tracking/vx"] is None and nan["success_rate"] == 0.0
    report = {
        "task": "joystick",
        "checkpoint_step": 4,
        "episodes": 4,
        "seed": 0,
        "mjx": {"success_rate": 0.5, "tracking/vx": 0.12, "tracking/yaw": None},
        "mujoco": figures,
    }
    rows = {line.split()[0]: line.split()[1:] for line in sim2sim.format_table(report).splitlines()[2:]}
    assert rows["tracking/vx"] == ["0.12", "0.125"] and rows["tracking/yaw"] == ["n/a", "0.125"]


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # ffmpeg's subprocess when reading back
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


def test_plot_of_a_run_that_evaluated_only_at_its_end(tmp_path):
    """Its train curves come from every row that has them (not only the evaluated one), its one
    evaluation is a marker, and a 500k-step axis reads 100k, 200k, ... (engineering notation)."""
    from matplotlib.ticker import EngFormatter

    rows = [
        {
            "step": 16384 * i,
            "wall_s": float(i),
            "train/episode_reward": 2.0 * i,
            "train/episode_length": 10.0,
            "train/episodes_finished": 0 if i == 1 else 4,
        }
        for i in range(1, 31)
    ]
    rows[-1].update({"eval/episode_reward": 70.0, "eval/episode_length": 20.0, "eval/reward/alive": 5.0})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    drawn = plot.panels({str(run_dir): plot.read_metrics(run_dir)})
    assert [(p.title, p.key) for p in drawn] == [
        ("episode return", "eval/episode_reward"),
        ("episode length", "eval/episode_length"),
        ("reward term alive", "eval/reward/alive"),
    ]
    evaluation, training = drawn[0].curves
    assert (evaluation.key, evaluation.steps, evaluation.values, evaluation.markers) == (
        "eval/episode_reward",
        [491520],
        [70.0],
        True,
    )
    # Row 1 finished no episode: its 0 is a placeholder, not a return.
    assert training.key == "train/episode_reward" and not training.markers
    assert training.steps == [16384 * i for i in range(2, 31)] and training.values == [2.0 * i for i in range(2, 31)]

    fig = plot.figure(drawn)
    ax = fig.axes[0]
    eval_line, train_line = ax.lines
    assert eval_line.get_linestyle() == "None" and eval_line.get_marker() == "o"
    assert list(eval_line.get_xdata()) == [491520]
    assert train_line.get_linestyle() == "-" and len(train_line.get_xdata()) == 29
    formatter = ax.xaxis.get_major_formatter()
    assert isinstance(formatter, EngFormatter)
    assert [formatter(x) for x in (0, 100000, 500000, 1000000)] == ["0", "100k", "500k", "1M"]
    import matplotlib.pyplot as plt

    plt.close(fig)
    assert plot.plot([run_dir], tmp_path / "curves.png") == [
        "eval/episode_reward",
        "eval/episode_length",
        "eval/reward/alive",
    ]


def test_use_memory_on_demand_sets_preallocate_unless_the_user_did(monkeypatch):
    import os

    from jaxhum.tools import memory

    monkeypatch.delenv(memory.PREALLOCATE, raising=False)
    memory.use_memory_on_demand()
    assert os.environ[memory.PREALLOCATE] == "false"
    monkeypatch.setenv(memory.PREALLOCATE, "true")
    memory.use_memory_on_demand()
    assert os.environ[memory.PREALLOCATE] == "true"


@pytest.mark.parametrize("name", ["evaluate", "export", "sim2sim", "plot", "robustness", "falls"])
def test_every_tool_asks_for_gpu_memory_on_demand_before_parsing(name, monkeypatch, capsys):
    """JAX would take 75% of the GPU at its first device use; a tool beside a training run must not."""
    import importlib
    import os

    from jaxhum.tools import memory

    tool = importlib.import_module(f"jaxhum.tools.{name}")
    monkeypatch.delenv(memory.PREALLOCATE, raising=False)
    assert tool.main(["--no-such-flag"]) == 2  # refused by the parser: the variable was set before
    assert capsys.readouterr().err.startswith("error: arguments: ")
    assert os.environ[memory.PREALLOCATE] == "false"


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

"""CLI smoke run with tiny settings: every artifact is written; the saved policy loads and acts.

The subprocess shares a persistent JAX compilation cache (under .pytest_cache) so that repeated
test runs skip most of the compile time.
"""

from __future__ import annotations

import json
import pathlib
import struct
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CountCompiles

from jaxhum import config as config_lib
from jaxhum import envs
from jaxhum.run import checkpoint
from jaxhum.run import config as run_config
from jaxhum.run import loop as run_loop

REPO = pathlib.Path(__file__).resolve().parents[1]
# 4 envs x 4 steps = 16 env steps per iteration; 20 iterations; log every 3, evaluate every 10.
TINY = [
    "--preset", "cpu", "--num-envs", "4", "--num-timesteps", "320", "--checkpoint-every", "128",
    "--set", "ppo.unroll_length=4", "ppo.num_minibatches=2", "ppo.num_updates_per_batch=1",
    "ppo.policy_hidden_sizes=8", "ppo.value_hidden_sizes=8", "ppo.num_eval_envs=2",
    "env.episode_length=20", "log_every=48", "eval_every=160", "keep_checkpoints=2",
]


def read_tfevents(path: pathlib.Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in a TensorBoard event file (no tensorboard needed)."""
    from tensorboardX.proto import event_pb2

    data = path.read_bytes()
    out, offset = [], 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        record = data[offset + 12:offset + 12 + length]
        offset += 12 + length + 4
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
            out.append((value.tag, event.step, value.simple_value))
    return out


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, subprocess_env):
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.humanoid_run", *TINY, "--out", str(run_dir)],
        cwd=REPO, env=subprocess_env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


def test_cli_writes_every_artifact(smoke_run):
    run_dir, proc = smoke_run
    assert "Traceback" not in proc.stderr
    # config.json: the full config, readable back.
    cfg = config_lib.from_json(run_config.RunConfig, json.loads((run_dir / "config.json").read_text()))
    assert cfg.ppo.num_envs == 4 and cfg.env["episode_length"] == 20 and cfg.out_dir == str(run_dir)
    assert set(cfg.env) == set(config_lib.field_types(envs.REGISTRY["humanoid_run"].config_cls))  # defaults too
    # metrics.jsonl: one object per log point (every 3 iterations, every evaluation, the end);
    # evaluations every 10 iterations, which is not a multiple of the log cadence.
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    log_steps = sorted(set(range(48, 321, 48)) | {160, 320})
    assert [r["step"] for r in rows] == log_steps
    for row in rows:
        assert {"step", "wall_s", "train/steps_per_second", "train/episode_reward", "train/total_loss"} <= set(row)
    eval_steps = [r["step"] for r in rows if "eval/episode_reward" in r]
    assert eval_steps == [160, 320]
    assert all(np.isfinite(r["train/total_loss"]) for r in rows)
    # TensorBoard scalars for the same points.
    events = list(run_dir.glob("events.out.tfevents.*"))
    assert len(events) == 1
    scalars = read_tfevents(events[0])
    assert {s for t, s, _ in scalars if t == "eval/episode_reward"} == {160, 320}
    assert {s for t, s, _ in scalars if t == "train/episode_reward"} == set(log_steps)
    # checkpoints: the newest 2 of (128, 256, 320 = the end) plus the best one.
    ckpt = sorted(int(p.name) for p in (run_dir / checkpoint.CHECKPOINT_DIR).iterdir() if p.name.isdigit())
    assert ckpt == [256, 320]
    assert len([p for p in (run_dir / checkpoint.BEST_DIR).iterdir() if p.name.isdigit()]) == 1
    # final evaluation summary and the printed summary.
    summary = json.loads((run_dir / "eval_summary.json").read_text())
    assert summary["step"] == 320 and summary["eval/episode_reward"] == rows[-1]["eval/episode_reward"]
    assert summary["best_eval_return"] == max(r["eval/episode_reward"] for r in rows if "eval/episode_reward" in r)
    assert f"run directory: {run_dir}" in proc.stdout and "final eval return" in proc.stdout
    assert "step 320/320 (100.0%)" in proc.stdout  # plain progress lines when not on a terminal
    # Not silent while it compiles: the first lines say what compiles, before the first log point.
    first = proc.stdout.splitlines()[:3]
    assert first[0].startswith("initialising the training state"), first
    assert first[1] == "compiling the training iteration (first call; cached compiles are faster)...", first
    assert first[2].startswith("step 48/320 (15.0%)"), first
    assert "compiling the evaluation (first call; cached compiles are faster)..." in proc.stdout


def test_restore_and_load_policy(smoke_run):
    run_dir, _ = smoke_run
    state, cfg = checkpoint.restore(run_dir)
    assert int(state.iteration) == 20 and cfg.ppo.num_envs == 4
    assert state.env_state.obs.shape[0] == 4
    best_state, _ = checkpoint.restore(run_dir, best=True)
    assert int(best_state.iteration) in (10, 20)
    earlier, _ = checkpoint.restore(run_dir, step=256)
    assert int(earlier.iteration) == 16

    policy = checkpoint.load_policy(run_dir)
    obs = state.env_state.obs
    action = policy(obs)
    assert action.shape == (4, 17) and bool(jnp.all(jnp.abs(action) <= 1.0))
    trainer = run_config.build_trainer(cfg)
    from jaxhum.rl.train import policy_bundle

    expected = trainer.policy_fn(policy_bundle(state), obs, None)  # normalizer applied inside
    np.testing.assert_array_equal(np.asarray(action), np.asarray(expected))
    sampled = checkpoint.load_policy(run_dir, deterministic=False)
    a1 = sampled(obs, jax.random.key(0))
    assert a1.shape == (4, 17) and not np.array_equal(np.asarray(a1), np.asarray(action))
    with pytest.raises(ValueError, match="key"):
        sampled(obs)


def test_stop_at_eval_return_ends_run_at_first_eval_reaching_it(tmp_path):
    """A run ends (with a final checkpoint and summary) at the first evaluation >= the target."""
    from test_rl_train import make_point_env

    from jaxhum.rl import PPOConfig, make_train

    ppo = PPOConfig(num_envs=4, unroll_length=4, num_minibatches=2, num_updates_per_batch=1,
                    policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=2)
    # point-env returns are negative; -1e9 is reached at the first evaluation (iteration 3)
    config = run_config.RunConfig(ppo=ppo, num_timesteps=16 * 50, log_every=16, eval_every=48,
                              checkpoint_every=16 * 50, stop_at_eval_return=-1e9)
    env = make_point_env(episode_length=8)
    trainer = make_train(env, ppo, run_config.num_iterations(config))
    result = run_loop.train(config, tmp_path / "run", progress="none", trainer=trainer)
    assert result.exit_code == 0
    assert result.step == 48
    assert (tmp_path / "run" / "checkpoints" / "48").is_dir()
    summary = json.loads((tmp_path / "run" / "eval_summary.json").read_text())
    assert summary["step"] == 48 and summary["eval/episode_reward"] >= -1e9


def test_precompile_compiles_from_shapes_in_the_background_and_reports_errors():
    from jaxhum.rl import parallel

    def double_it(x):
        return 2.0 * x

    double = jax.jit(double_it)
    with CountCompiles() as compiles:
        compiling = parallel.Precompile(double, jax.ShapeDtypeStruct((3,), jnp.float32))
        assert compiling.wait() is None and compiles.count("double_it") == 1
        np.testing.assert_array_equal(double(jnp.arange(3.0)), [0.0, 2.0, 4.0])
        assert compiles.count("double_it") == 1  # the caller's call found the program compiled

    def broken(x):
        raise ValueError("no such shape")

    assert isinstance(parallel.Precompile(jax.jit(broken), jnp.ones(3)).wait(), ValueError)


@pytest.mark.parametrize("num_seeds", [1, 2])
def test_runner_uses_the_programs_it_precompiled(tmp_path, monkeypatch, num_seeds):
    """With precompile=True the iteration and the evaluation compile in background threads from
    the state's shapes; the run then calls exactly those programs (each compiled once) and logs
    what a run without precompiling logs."""
    from test_rl_train import make_point_env

    from jaxhum.rl import PPOConfig, make_train, parallel

    started = []

    class Recorded(parallel.Precompile):
        def __init__(self, fn, *args):
            started.append(fn)
            super().__init__(fn, *args)

    monkeypatch.setattr(parallel, "Precompile", Recorded)
    ppo = PPOConfig(num_envs=4, unroll_length=4, num_minibatches=2, num_updates_per_batch=1,
                    policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=2)
    config = run_config.RunConfig(ppo=ppo, num_timesteps=16 * 6, log_every=16, eval_every=48,
                              checkpoint_every=16 * 6, num_seeds=num_seeds)
    rows = {}
    for precompile in (True, False):
        trainer = make_train(make_point_env(episode_length=8), ppo, run_config.num_iterations(config),
                             num_seeds=num_seeds)
        run_dir = tmp_path / str(precompile)
        with CountCompiles() as compiles:
            result = run_loop.train(config, run_dir, progress="none", trainer=trainer, precompile=precompile)
        assert result.exit_code == 0
        assert compiles.count("_iteration") == 1 and compiles.count("_evaluate") == 1, compiles.names
        if precompile:
            assert started == [trainer.iteration, trainer.evaluate]
        metrics = run_dir / ("seed_1" if num_seeds > 1 else ".") / "metrics.jsonl"
        rows[precompile] = [{k: v for k, v in json.loads(line).items() if k not in ("wall_s", "train/steps_per_second")}
                            for line in metrics.read_text().splitlines()]
    assert len(started) == 2  # the run without precompiling started none
    assert [r["step"] for r in rows[True] if "eval/episode_reward" in r] == [48, 96]
    assert rows[True] == rows[False]


def test_a_run_says_what_it_compiles_and_its_eta_leaves_out_compiling(tmp_path, capsys):
    """Before a program's first call the run says that it compiles (silent with progress 'none');
    the first log point has no ETA (nothing but the compiling iteration has run), later ones do."""
    from test_rl_train import make_point_env

    from jaxhum.rl import PPOConfig, make_train

    ppo = PPOConfig(num_envs=4, unroll_length=4, num_minibatches=2, num_updates_per_batch=1,
                    policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=2)
    config = run_config.RunConfig(ppo=ppo, num_timesteps=16 * 6, log_every=16, eval_every=48, checkpoint_every=16 * 6)
    trainer = make_train(make_point_env(episode_length=8), ppo, run_config.num_iterations(config))
    run_loop.train(config, tmp_path / "lines", progress="lines", trainer=trainer, precompile=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["initialising the training state (compiling init; cached compiles are faster)...",
                         "compiling the training iteration (first call; cached compiles are faster)...",
                         lines[2]]
    assert lines[2].startswith("step 16/96 ") and "eta" not in lines[2]
    steps = [line for line in lines if line.startswith("step ")]
    assert len(steps) == 6 and all(" | eta " in line for line in steps[1:])
    compiling_eval = lines.index("compiling the evaluation (first call; cached compiles are faster)...")
    assert lines[compiling_eval + 1].startswith("step 48/96 ")  # the first evaluation's log point
    run_loop.train(config, tmp_path / "quiet", progress="none", trainer=trainer, precompile=False)
    assert capsys.readouterr().out == ""

"""Fine-tuning with init_from=RUN_DIR: the new run starts from the source run's policy, value and
normalizer; mismatched shapes and missing runs are refused on one line before anything is
compiled or written; a fine-tuned run resumes normally (init_from is then ignored).

The runs train the one-joint MJX slider of tests/helpers.py, registered as a task, through the
real command line of experiments.humanoid_run (in-process, and in real processes through
tests/slider_cli.py): what moves from one run to another (policy, value, normalizer) and what is
refused is the runner's, the same for every task, and the slider compiles in seconds where
humanoid_run took minutes in each process."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import helpers
import jax
import pytest

from experiments import humanoid_run
from jaxhum.run import checkpoint, finetune
from jaxhum.run import config as run_config
from jaxhum.run import main as run_main

REPO = pathlib.Path(__file__).resolve().parents[1]
CLI = pathlib.Path(__file__).with_name("slider_cli.py")  # experiments.humanoid_run's, with the slider task
ITERATION = 16  # env steps per iteration: 4 envs x 4 steps
TINY = [  # the config of test_resume.py, so the two share compiles through the persistent cache
    "--preset", "cpu", "--num-envs", "4", "--checkpoint-every", str(100 * ITERATION),
    "--set", f"env_name={helpers.SLIDER_TASK}", "ppo.unroll_length=4", "ppo.num_minibatches=2",
    "ppo.num_updates_per_batch=1",
    "ppo.policy_hidden_sizes=8", "ppo.value_hidden_sizes=8", "ppo.num_eval_envs=2",
    "env.episode_length=20", f"log_every={10 * ITERATION}", "keep_checkpoints=3", "eval_every=0",
]
TRANSFERRED = (".policy_params", ".value_params", ".normalizer")


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(CLI), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module", autouse=True)
def _slider_task():
    with helpers.slider_task():
        yield


@pytest.fixture(scope="module")
def source(tmp_path_factory, subprocess_env) -> pathlib.Path:
    """A tiny run trained for two iterations (seed 3)."""
    run_dir = tmp_path_factory.mktemp("finetune") / "source"
    proc = _cli([*TINY, "--seed", "3", "--num-timesteps", str(2 * ITERATION), "--out", str(run_dir)], subprocess_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def _transferred(leaves: dict[str, tuple]) -> dict[str, tuple]:
    return {p: v for p, v in leaves.items() if p.startswith(TRANSFERRED)}


def test_fine_tuned_state_starts_from_the_source(source, tmp_path):
    prepared = run_main.prepare(humanoid_run.get_config, [*TINY, "--num-timesteps", str(ITERATION), "--out",
                              str(tmp_path / "ft"), f"init_from={source}"], "humanoid_run", humanoid_run.PRESETS)
    config = prepared.config
    trainer = run_config.build_trainer(config)
    key = run_config.train_keys(config)[0]
    state = finetune.init_state(trainer, config, key)
    fresh = trainer.init(key)

    store = checkpoint.CheckpointStore(tmp_path / "ft")
    try:  # compared through the checkpoint format, leaf path by leaf path, bit for bit
        store.save(0, state, {}, {})
        store.save(1, fresh, {}, {})
    finally:
        store.close()
    mine, new = helpers.checkpoint_leaves(tmp_path / "ft", 0), helpers.checkpoint_leaves(tmp_path / "ft", 1)
    theirs = helpers.checkpoint_leaves(source, 2 * ITERATION)
    assert _transferred(mine) == _transferred(theirs) and len(_transferred(mine)) >= 6
    assert _transferred(mine) != _transferred(new)  # seed 0 initialises other weights
    rest = {p for p in mine if not p.startswith(TRANSFERRED)}
    assert rest and all(mine[p] == new[p] for p in rest)  # optimizer, env states, key: fresh
    assert int(jax.device_get(state.iteration)) == 0


def test_fine_tune_run_then_resume_without_the_source(source, tmp_path, subprocess_env):
    ft = tmp_path / "ft"
    proc = _cli([*TINY, "--num-timesteps", str(ITERATION), "--out", str(ft), f"init_from={source}"], subprocess_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((ft / "config.json").read_text())["init_from"] == str(source)
    assert f"fine-tuning from {source}" in proc.stdout + proc.stderr
    # A resumed fine-tuned run restores its own checkpoint: the source may even be gone.
    moved = source.with_name("source-moved")
    source.rename(moved)
    try:
        proc = _cli(["--resume", str(ft), "--num-timesteps", str(2 * ITERATION)], subprocess_env)
    finally:
        moved.rename(source)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"init_from {source} ignored" in proc.stdout + proc.stderr
    assert helpers.checkpoint_leaves(ft, 2 * ITERATION)


def _refused(argv: list[str], tmp_path: pathlib.Path, capfd) -> str:
    capfd.readouterr()
    status = humanoid_run.main([*TINY, "--out", str(tmp_path / "out"), *argv])
    err = capfd.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
    return err


def test_shape_mismatch_is_refused_naming_the_leaf(source, tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(run_main, "train", lambda *a, **k: pytest.fail("bad input reached training"))
    err = _refused([f"init_from={source}", "ppo.policy_hidden_sizes=16"], tmp_path, capfd)
    assert err == (f"error: init_from: state.policy_params['params']['hidden_0']['bias']: {source} has shape (8,), "
                   "this run needs (16,)\n")
    err = _refused([f"init_from={source}", "ppo.policy_hidden_sizes=8,8"], tmp_path, capfd)
    assert err.startswith("error: init_from: state.policy_params['params']"), err  # a layer more


def test_missing_or_empty_source_is_refused(tmp_path, capfd):
    err = _refused([f"init_from={tmp_path / 'nowhere'}"], tmp_path, capfd)
    assert err == f"error: init_from: {tmp_path / 'nowhere'} does not exist or is not a directory\n"
    (tmp_path / "empty").mkdir()
    err = _refused([f"init_from={tmp_path / 'empty'}"], tmp_path, capfd)
    assert err.startswith(f"error: init_from: {tmp_path / 'empty'} holds no complete checkpoint"), err


def test_missing_source_in_a_real_process(tmp_path, subprocess_env):
    proc = _cli([*TINY, "--out", str(tmp_path / "out"), f"init_from={tmp_path / 'nowhere'}"], subprocess_env)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"error: init_from: {tmp_path / 'nowhere'} does not exist or is not a directory\n"
    assert not (tmp_path / "out").exists()

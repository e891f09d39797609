"""Exact resume with real processes: a run stopped by SIGTERM or killed by SIGKILL and then resumed
ends with the same TrainState, bit for bit, as the uninterrupted run; a corrupted newest
checkpoint is skipped; resuming refuses changes that alter the run.

Phase 1 starts three runs of one tiny config side by side: the reference (no evaluation), one
stopped by SIGTERM after its first checkpoint (evaluating, which must not perturb training) and
one killed by SIGKILL at a random moment after its second checkpoint (possibly mid-save), whose
newest checkpoint is then corrupted. Phase 2 resumes both.

The runs train the one-joint MJX slider of tests/helpers.py, registered as a task, through the
real command line of experiments.humanoid_run (tests/slider_cli.py): what is tested here is the
runner's (signals, checkpoints, resume, refused changes), the same for every task, and each of
the five processes compiles the slider in seconds where humanoid_run took minutes. The
humanoid's own state (its MJX Data) is resumed bit for bit by test_save_faults.py.
"""

from __future__ import annotations

import json
import pathlib
import random
import signal
import subprocess
import sys
import time

import helpers
import pytest

from experiments import humanoid_run
from jaxhum.run import checkpoint
from jaxhum.run import main as run_main

REPO = pathlib.Path(__file__).resolve().parents[1]
CLI = pathlib.Path(__file__).with_name("slider_cli.py")  # experiments.humanoid_run's, with the slider task
ITERATION = 16  # env steps per iteration: 4 envs x 4 steps
TOTAL = 600 * ITERATION
TINY = [
    "--preset", "cpu", "--num-envs", "4", "--num-timesteps", str(TOTAL), "--checkpoint-every", str(100 * ITERATION),
    "--set", f"env_name={helpers.SLIDER_TASK}", "ppo.unroll_length=4", "ppo.num_minibatches=2",
    "ppo.num_updates_per_batch=1",
    "ppo.policy_hidden_sizes=8", "ppo.value_hidden_sizes=8", "ppo.num_eval_envs=2",
    "env.episode_length=20", f"log_every={10 * ITERATION}", "keep_checkpoints=3",
]


def _start(args: list[str], env: dict[str, str], log: pathlib.Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, str(CLI), *args], cwd=REPO, env=env,
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )


def _steps(run_dir: pathlib.Path) -> list[int]:
    directory = run_dir / checkpoint.CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _wait_for_checkpoints(proc: subprocess.Popen, run_dir: pathlib.Path, count: int, timeout: float = 480) -> None:
    deadline = time.monotonic() + timeout
    while len(_steps(run_dir)) < count:
        assert proc.poll() is None, f"run ended (status {proc.returncode}) before {count} checkpoints"
        assert time.monotonic() < deadline, "timed out waiting for a checkpoint"
        time.sleep(0.02)


def _wait_for_log(proc: subprocess.Popen, run_dir: pathlib.Path, log: pathlib.Path, timeout: float = 600) -> None:
    """Waits for the run's first metrics row (written after its first iterations ran)."""
    deadline = time.monotonic() + timeout
    metrics = run_dir / "metrics.jsonl"
    while not (metrics.is_file() and metrics.stat().st_size > 0):
        if proc.poll() is not None:
            pytest.fail(f"run ended (status {proc.returncode}) before it logged:\n" + log.read_text()[-3000:])
        assert time.monotonic() < deadline, "timed out waiting for the first log row"
        time.sleep(0.05)


def _final_leaves(run_dir: pathlib.Path) -> dict[str, tuple]:
    return helpers.checkpoint_leaves(run_dir, TOTAL)


@pytest.fixture(scope="module", autouse=True)
def _slider_task():
    """The slider is a task for this module's in-process command lines too (refused changes)."""
    with helpers.slider_task():
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory, subprocess_env):
    env = subprocess_env
    root = tmp_path_factory.mktemp("resume")
    dirs = {name: root / name for name in ("ref", "term", "kill")}
    logs = {name: root / f"{name}.log" for name in dirs}

    # Phase 1: three runs side by side; each interrupted one is signalled once its condition holds.
    # The reference starts first: once it has logged, its init and iteration are compiled and in
    # the shared persistent compilation cache, so the other two load them instead of compiling
    # the same programs again at the same time.
    procs = {"ref": _start([*TINY, "--out", str(dirs["ref"]), "--set", "eval_every=0"], env, logs["ref"])}
    _wait_for_log(procs["ref"], dirs["ref"], logs["ref"])
    procs |= {
        "term": _start([*TINY, "--out", str(dirs["term"]), "--set", f"eval_every={50 * ITERATION}"], env, logs["term"]),
        "kill": _start([*TINY, "--out", str(dirs["kill"]), "--set", "eval_every=0",
                        f"checkpoint_every={60 * ITERATION}"], env, logs["kill"]),
    }
    kill_delay = random.uniform(0.0, 0.3)
    pending = {"term": (1, signal.SIGTERM, 0.0), "kill": (2, signal.SIGKILL, kill_delay)}
    deadline = time.monotonic() + 600
    while pending:
        for name, (count, signum, delay) in list(pending.items()):
            if procs[name].poll() is not None:
                pytest.fail(f"{name} ended (status {procs[name].returncode}) before it was signalled:\n"
                            + logs[name].read_text()[-3000:])
            if len(_steps(dirs[name])) >= count:
                time.sleep(delay)
                procs[name].send_signal(signum)
                del pending[name]
        assert time.monotonic() < deadline, "timed out waiting for checkpoints"
        time.sleep(0.01)
    status = {name: proc.wait(timeout=600) for name, proc in procs.items()}
    stopped = {"term": _steps(dirs["term"]), "kill": _steps(dirs["kill"])}
    assert status["ref"] == 0, logs["ref"].read_text()[-3000:]

    # The killed run's newest complete checkpoint is then damaged, and a partial save added:
    # its resume must report the damage, skip both, and still end bit for bit on the reference.
    corrupted = stopped["kill"][-1]
    for path in (dirs["kill"] / checkpoint.CHECKPOINT_DIR / str(corrupted) / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"corrupted")
    partial = dirs["kill"] / checkpoint.CHECKPOINT_DIR / f"{TOTAL + ITERATION}.orbax-checkpoint-tmp-1"
    partial.mkdir()

    # Phase 2: resume both side by side.
    resumed_procs = {name: _start(["--resume", str(dirs[name])], env, root / f"{name}-resume.log")
                     for name in ("term", "kill")}
    resumed = {name: proc.wait(timeout=600) for name, proc in resumed_procs.items()}
    return {
        "dirs": dirs, "status": status, "stopped": stopped, "resumed": resumed, "kill_delay": kill_delay,
        "logs": {name: path.read_text() for name, path in logs.items()},
        "resume_logs": {name: (root / f"{name}-resume.log").read_text() for name in resumed_procs},
        "partial": partial, "corrupted": corrupted,
    }


def test_sigterm_saves_a_checkpoint_and_exits_143(runs):
    assert runs["status"]["term"] == 128 + signal.SIGTERM, runs["logs"]["term"][-3000:]
    steps = runs["stopped"]["term"]
    assert steps and steps[-1] < TOTAL
    assert "stopped by SIGTERM" in runs["logs"]["term"] and "Traceback" not in runs["logs"]["term"]


def test_resume_after_sigterm_is_bit_exact(runs):
    assert runs["resumed"]["term"] == 0, runs["resume_logs"]["term"][-3000:]
    # The interrupted run also evaluated; evaluation must not have touched the training keys.
    assert _final_leaves(runs["dirs"]["term"]) == _final_leaves(runs["dirs"]["ref"])
    rows = [json.loads(line) for line in (runs["dirs"]["term"] / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows]
    assert steps == sorted(set(steps)) and steps[-1] == TOTAL  # no duplicated log points
    assert any("eval/episode_reward" in row for row in rows)


def test_resume_after_sigkill_and_corruption_is_bit_exact(runs):
    assert runs["status"]["kill"] == -signal.SIGKILL
    assert runs["stopped"]["kill"][-1] < TOTAL and len(runs["stopped"]["kill"]) >= 2
    log = runs["resume_logs"]["kill"]
    assert runs["resumed"]["kill"] == 0, log[-3000:]
    assert _final_leaves(runs["dirs"]["kill"]) == _final_leaves(runs["dirs"]["ref"]), f"kill delay {runs['kill_delay']}"
    # The damaged newest checkpoint was reported on one line and the previous one used.
    warnings = [line for line in log.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "corrupted" in warnings[0] and str(runs["corrupted"]) in warnings[0]
    assert f"resumed {runs['dirs']['kill']} at step {runs['stopped']['kill'][-2]}" in log
    assert len(list((runs["dirs"]["kill"] / checkpoint.CORRUPT_DIR).iterdir())) == 1  # moved, not deleted
    assert runs["partial"].is_dir()  # the partial save was ignored and left alone


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--num-envs", "8"], "ppo.num_envs"),
        (["--seed", "1"], "seed"),
        (["--set", "ppo.value_hidden_sizes=16"], "ppo.value_hidden_sizes"),
        (["--set", "env.episode_length=30"], "env.episode_length"),
        (["--set", "ppo.learning_rate=1e-3"], "ppo.learning_rate"),
    ],
)
def test_resume_refuses_changes_naming_the_field(runs, argv, field, capsys):
    before = sorted(p.name for p in runs["dirs"]["ref"].rglob("*"))
    assert humanoid_run.main(["--resume", str(runs["dirs"]["ref"]), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {field}: cannot be changed on resume (saved ") and err.count("\n") == 1
    assert sorted(p.name for p in runs["dirs"]["ref"].rglob("*")) == before


def test_resume_allows_cadence_and_length_changes(runs):
    prepared = run_main.prepare(
        humanoid_run.get_config,
        ["--resume", str(runs["dirs"]["ref"]), "--num-timesteps", str(2 * TOTAL), "--checkpoint-every", "320",
         "--set", "eval_every=160", "log_every=16", "keep_checkpoints=5", "--seed", "0"],
        "humanoid_run", humanoid_run.PRESETS,
    )
    assert prepared.resume and prepared.run_dir == runs["dirs"]["ref"]
    assert (prepared.config.num_timesteps, prepared.config.eval_every, prepared.config.keep_checkpoints) == (
        2 * TOTAL, 160, 5)

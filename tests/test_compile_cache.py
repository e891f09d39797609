"""Compile paid once: the persistent compilation cache of runs and tools, and a job's phase.

A second run of the same config loads every program from the cache (JAX's monitoring events, as
the run's `phase: training` line reports them, and the cache folder gains no entry) and gives bit
for bit the metrics and checkpoint of the first and of a run with the cache off. The runs are the
slider of tests/helpers.py through the real command line (tests/slider_cli.py) in processes of
their own, each with its own cache folder: the test process's cache (tests/conftest.py) is never
switched. The job service's phase is checked with a stand-in job program.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import types

import helpers
import jax
import pytest

from jaxhum.config import ConfigError
from jaxhum.jobs import manager as manager_lib
from jaxhum.jobs.store import Job, Store
from jaxhum.run import compile_cache
from jaxhum.run import config as run_config
from jaxhum.run import log as runlog

REPO = pathlib.Path(__file__).resolve().parents[1]
CLI = pathlib.Path(__file__).with_name("slider_cli.py")
ITERATION = 16  # env steps per iteration: 4 envs x 4 steps
TINY = [
    "--preset", "cpu", "--num-envs", "4", "--num-timesteps", str(3 * ITERATION),
    "--checkpoint-every", str(2 * ITERATION), "--progress", "lines",
    "--set", f"env_name={helpers.SLIDER_TASK}", "ppo.unroll_length=4", "ppo.num_minibatches=2",
    "ppo.num_updates_per_batch=1", "ppo.policy_hidden_sizes=8", "ppo.value_hidden_sizes=8", "ppo.num_eval_envs=2",
    "env.episode_length=20", f"log_every={ITERATION}", f"eval_every={2 * ITERATION}",
]
TIMING = ("wall_s", "train/steps_per_second")  # the only figures two runs may differ in
COUNTS = re.compile(r"compile cache (.+): (\d+) programs loaded, (\d+) compiled and saved")


def _run(out: pathlib.Path, cache: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(CLI), *TINY, "--out", str(out), f"compile_cache={cache}"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _training_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if runlog.parse_phase(line) is not None]
    assert [runlog.parse_phase(line) for line in lines] == [("compiling", None), ("training", ITERATION)], lines
    return lines[1]


def _untimed_metrics(run_dir: pathlib.Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in runlog.read_metrics(run_dir)]


def _entries(cache: pathlib.Path) -> set[str]:
    return {p.name for p in cache.iterdir() if p.name.endswith("-cache")}


def test_a_second_run_loads_every_program_from_the_cache_and_matches_the_first_bit_for_bit(tmp_path, subprocess_env):
    cache = tmp_path / "cache"
    first = _training_line(_run(tmp_path / "first", str(cache), subprocess_env))
    written = _entries(cache)
    where, loaded, saved = COUNTS.search(first).groups()
    assert (pathlib.Path(where), int(loaded)) == (cache, 0) and int(saved) > 0 and len(written) >= int(saved)

    second = _training_line(_run(tmp_path / "second", str(cache), subprocess_env))
    where, loaded, saved = COUNTS.search(second).groups()
    assert int(loaded) > 0 and int(saved) == 0, second  # init and the iteration, from the cache
    assert _entries(cache) == written  # nothing compiled anew: the evaluation came from the cache too

    off = _training_line(_run(tmp_path / "off", compile_cache.OFF, subprocess_env))
    assert "no compile cache" in off and not COUNTS.search(off)

    final = 3 * ITERATION
    runs = [tmp_path / name for name in ("first", "second", "off")]
    metrics = [_untimed_metrics(r) for r in runs]
    assert len(metrics[0]) == 3 and any("eval/episode_reward" in row for row in metrics[0])
    assert metrics[1] == metrics[0] and metrics[2] == metrics[0]
    leaves = [helpers.checkpoint_leaves(r, final) for r in runs]
    assert leaves[1] == leaves[0] and leaves[2] == leaves[0]
    saved_configs = [json.loads((r / "config.json").read_text())["compile_cache"] for r in runs]
    assert saved_configs == [str(cache), str(cache), "off"]


def test_an_unusable_cache_folder_is_one_warning_line_and_the_program_still_runs(tmp_path, subprocess_env):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    script = ("import jax, jax.numpy as jnp\n"
              "from jaxhum.run import compile_cache\n"
              f"print(compile_cache.enable({str(blocker / 'cache')!r}))\n"
              "print(int(jax.jit(lambda x: x * 2)(jnp.int32(21))))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=subprocess_env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["None", "42"]
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: compile_cache: cannot use "), proc.stderr


@pytest.fixture
def restore_jax_cache():
    """Puts this process's cache flags (tests/conftest.py's) back after a test that switches them."""
    from jax.experimental.compilation_cache import compilation_cache as jax_cache

    names = ("jax_enable_compilation_cache", "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {name: getattr(jax.config, name) for name in names}
    yield
    for name, value in saved.items():
        jax.config.update(name, value)
    jax_cache.reset_cache()


def test_enable_resolves_the_folder_turns_off_and_caches_small_compiles(tmp_path, monkeypatch, restore_jax_cache):
    assert compile_cache.default_dir({"XDG_CACHE_HOME": "/xdg"}) == pathlib.Path("/xdg/jaxhum/xla")
    assert compile_cache.default_dir({}) == pathlib.Path.home() / ".cache" / "jaxhum" / "xla"
    monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", raising=False)

    assert compile_cache.enable(compile_cache.OFF) is None and not jax.config.jax_enable_compilation_cache
    folder = tmp_path / "given"
    assert compile_cache.enable(str(folder)) == folder and folder.is_dir()
    assert jax.config.jax_enable_compilation_cache and jax.config.jax_compilation_cache_dir == str(folder)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == compile_cache.MIN_COMPILE_TIME_S
    # '' keeps the folder the process already uses (JAX_COMPILATION_CACHE_DIR, or set in code) ...
    assert compile_cache.enable("") == folder
    # ... and without one is the user's cache folder.
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.resolve("") == tmp_path / "xdg" / "jaxhum" / "xla"

    told: list[str] = []
    assert compile_cache.enable(str(tmp_path / "given" / "x" / "\u00e9"), warn=told.append) is not None
    (tmp_path / "file").write_text("")
    assert compile_cache.enable(str(tmp_path / "file" / "cache"), warn=told.append) is None
    assert len(told) == 1 and "cannot use" in told[0] and not jax.config.jax_enable_compilation_cache


def test_the_config_field_is_checked_in_one_line_and_may_change_on_resume(tmp_path):
    (tmp_path / "file").write_text("")
    for value, says in ((str(tmp_path / "file"), "is an existing file"), (" off", "without surrounding spaces"),
                        ("a\0b", "NUL byte")):
        with pytest.raises(ConfigError) as err:
            run_config.validate(run_config.RunConfig(compile_cache=value), build=False)
        assert err.value.field == "compile_cache" and says in str(err.value) and "\n" not in str(err.value)
    for value in ("", "off", str(tmp_path / "new" / "folder")):
        assert run_config.validate(run_config.RunConfig(compile_cache=value), build=False).compile_cache == value
    assert "compile_cache" in run_config.RESUMABLE_FIELDS


# ----------------------------------------------------------------------------- the job's phase


def test_log_phase_reads_the_current_process_only():
    before = b"phase: compiling\nphase: training from step 16 (first iteration done)\nstopped by SIGTERM\n"
    launch = b"[jaxhum.jobs 2026-01-01T00:00:00+00:00] python -m experiments.walk --resume DIR\n"
    assert manager_lib.log_phase(before + launch) == ("starting", None)
    assert manager_lib.log_phase(before + launch + b"phase: compiling\nresumed DIR at step 32\n") == ("compiling", None)
    now = before + launch + b"phase: compiling\nphase: training from step 48 (first iteration done 3.0 s ...)\n"
    assert manager_lib.log_phase(now) == ("training", 48)
    assert manager_lib.log_phase(b"phase: training from step 16\n") == ("training", 16)  # tail without the command
    assert runlog.parse_phase("phase: sleeping") is None and runlog.parse_phase("step 16/48") is None


def _job(num_timesteps: int = 1000) -> Job:
    return Job(id="j", task="walk", policy_type="PPO", status="running", argv=(), num_timesteps=num_timesteps,
               run_dir="", log_path="", created_at="")


def test_progress_gives_an_eta_only_while_training_and_measures_from_training_on():
    rows = [{"step": 100, "wall_s": 10.0}, {"step": 200, "wall_s": 100.0}, {"step": 300, "wall_s": 101.0}]
    assert manager_lib.progress(_job(), rows, mtime=1e9, phase="compiling")["eta"] is None
    trained = manager_lib.progress(_job(), rows, mtime=1e9, phase="training", training_from=200)
    assert trained["steps_per_second"] == 100.0 and trained["eta"] is not None  # (300 - 200) / 1 s
    # A point before this process's training (a resumed run's old one) is not a rate's start.
    only = manager_lib.progress(_job(), rows[:1] + [{**rows[2], "train/steps_per_second": 7.0}], mtime=1e9,
                                phase="training", training_from=200)
    assert only["steps_per_second"] == 7.0


# The stand-in job: announces its phases as the runner does, each after a file appears in its run directory.
STUB = '''
import json, pathlib, sys, time
args = sys.argv[1:]
out = pathlib.Path(args[args.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)

def wait(name):
    deadline = time.monotonic() + 120
    while not (out / name).exists() and time.monotonic() < deadline:
        time.sleep(0.02)

wait("go_compile"); print("phase: compiling", file=sys.stderr, flush=True)
wait("go_train"); print("phase: training from step 16 (first iteration done)", file=sys.stderr, flush=True)
with open(out / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": 16, "wall_s": 5.0, "train/steps_per_second": 4.0}) + "\\n")
wait("go_end")
'''


def _until(what: str, manager: manager_lib.Manager, job_id: str, phase: str) -> Job:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        manager.tick()
        job = manager.store.get(job_id)
        if manager.phase(job) == phase:
            return job
        time.sleep(0.05)
    raise AssertionError(f"{what}: the job's phase is {manager.phase(manager.store.get(job_id))}, not {phase}")


def test_a_job_shows_its_phase_and_an_eta_only_once_it_trains(tmp_path):
    stub = tmp_path / "stub.py"
    stub.write_text(STUB)
    (tmp_path / "data").mkdir()
    manager = manager_lib.Manager(Store(tmp_path / "data"), tmp_path / "data", {}, poll_interval=0.05,
                                  program=lambda task, args: [sys.executable, str(stub), *args])
    try:
        job = manager.submit(manager.new_id(), "walk", "PPO", [], num_timesteps=160, seed=0, preset=None)
        run_dir = pathlib.Path(job.run_dir)
        assert job.status == "running" and manager.phase(job) == "starting"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "go_compile").touch()
        _until("compiling", manager, job.id, "compiling")
        # A resumed run's old log point, rewritten by its restore (after `phase: compiling`), gives
        # no ETA and does not count as training.
        (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 0, "wall_s": 1.0, "train/steps_per_second": 9.0})
                                               + "\n")
        manager.tick()
        job = manager.store.get(job.id)
        assert manager.phase(job) == "compiling" and job.eta is None and job.steps_per_second == 9.0
        (run_dir / "go_train").touch()
        job = _until("training", manager, job.id, "training")
        while job.eta is None or job.step != 16:
            manager.tick()
            job = manager.store.get(job.id)
        assert job.steps_per_second > 0
        assert _view_phase(manager, job) == "training"
        manager.cancel(job.id)  # SIGTERM: a run saves its checkpoint, then exits
        assert manager.phase(manager.store.get(job.id)) == "stopping"
        job = _until("ended", manager, job.id, "ended")
        assert job.status == "cancelled" and job.eta is None
    finally:
        manager.stop()
    assert manager.phase(dataclasses.replace(job, status="queued")) == "queued"


def _view_phase(manager: manager_lib.Manager, job: Job) -> str:
    """The job's `phase` as GET /jobs/{id} shows it (the app's JobView of the job)."""
    app = pytest.importorskip("jaxhum.jobs.app")
    request = types.SimpleNamespace(app=types.SimpleNamespace(state=types.SimpleNamespace(manager=manager)),
                                    url_for=lambda route, **kw: f"http://server/logs/{kw['name']}")
    return app._view(request, job).phase


def test_loading_a_run_turns_the_cache_on_only_when_asked(tmp_path, restore_jax_cache):
    """`load_run` in a user's code leaves JAX's process-wide settings alone; the tools ask for
    the run's cache (`compile_cache=True`) and get its folder."""
    from test_after_training import make_run_dir

    from jaxhum.run import checkpoint

    run_dir = make_run_dir(tmp_path / "run", "humanoid_run", {"episode_length": 10})
    jax.config.update("jax_enable_compilation_cache", False)  # as a user's process may have it
    directory = jax.config.jax_compilation_cache_dir
    checkpoint.load_run(run_dir)
    checkpoint.restore(run_dir)
    assert not jax.config.jax_enable_compilation_cache
    checkpoint.load_run(run_dir, compile_cache=True)  # the run's '' setting: the folder JAX already uses
    assert jax.config.jax_enable_compilation_cache and jax.config.jax_compilation_cache_dir == directory

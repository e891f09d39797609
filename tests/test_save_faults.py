"""Faults while saving a checkpoint: the run stops with one line, and nothing saved is lost.

A tiny humanoid_run trains in-process through the real command line (`experiments.humanoid_run.main`),
with one trainer shared by every run of this module (`run_config.build_trainer` is patched to return
it, so the training iteration is compiled once). The second checkpoint's save is made to fail the
way a full disk (ENOSPC) or a permission error (EACCES) makes it fail, at three points of Orbax's
write: the first file, after the arrays are written, and the final rename that commits it. CI runs
as root, so the faults are injected into `open` and `os.rename` rather than made with chmod.

Each case checks: exit status 1 with one `error:` line that names the checkpoint directory and
the errno; the first checkpoint intact and the only one a resume sees (no temporary directory
left behind, and keep_checkpoints=1 did not delete it); and `--resume` then finishes bit for bit
on the uninterrupted run.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import logging
import os
import pathlib
from collections.abc import Iterator

import helpers
import numpy as np
import pytest

from experiments import humanoid_run
from jaxhum.run import checkpoint
from jaxhum.run import config as run_config
from jaxhum.run import loop as run_loop
from jaxhum.run import main as run_main
from jaxhum.run.checkpoint import CHECKPOINT_DIR, CheckpointSaveError, CheckpointStore

ITERATION = 16  # 4 envs x 4 steps
TOTAL = 3 * ITERATION
TINY = [
    "--preset", "cpu", "--num-envs", "4", "--num-timesteps", str(TOTAL), "--checkpoint-every", str(ITERATION),
    "--progress", "none",
    "--set", "ppo.unroll_length=4", "ppo.num_minibatches=2", "ppo.num_updates_per_batch=1",
    "ppo.policy_hidden_sizes=8", "ppo.value_hidden_sizes=8", "ppo.num_eval_envs=2",
    "env.episode_length=20", f"log_every={ITERATION}", "eval_every=0", "keep_checkpoints=1",
]
FAILING_STEP = 2 * ITERATION


@pytest.fixture(scope="module")
def trainer():
    """The one trainer of this module, whose iteration compiles once: a restored state's arrays
    are placed as `init`'s are (uncommitted), so fresh and resumed runs share one compiled
    iteration."""
    prepared = run_main.prepare(humanoid_run.get_config, [*TINY, "--out", "unused"], "humanoid_run", ("cpu", "gpu"))
    return run_config.build_trainer(prepared.config)


@pytest.fixture
def shared_trainer(trainer, monkeypatch):
    monkeypatch.setattr(run_loop, "build_trainer", lambda config, env=None: trainer)
    return trainer


def _final_leaves(run_dir: pathlib.Path) -> dict[str, tuple]:
    return helpers.checkpoint_leaves(run_dir, TOTAL)


@pytest.fixture(scope="module")
def reference(trainer, tmp_path_factory) -> dict[str, tuple]:
    """Final state of the uninterrupted run."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_loop, "build_trainer", lambda config, env=None: trainer)
        assert humanoid_run.main([*TINY, "--out", str(run_dir)]) == 0
    return _final_leaves(run_dir)


@contextlib.contextmanager
def fault(stage: str, step: int) -> Iterator[list[str]]:
    """Makes the save of checkpoint `step` fail at `stage`; yields the paths it failed on.

    Stages: 'first_write' (ENOSPC on the first file written into the checkpoint),
    'after_arrays' (ENOSPC on the state's _METADATA, written once the arrays are on disk),
    'commit' (EACCES on renaming the finished temporary directory into place).
    """
    tmp = f"{os.sep}{CHECKPOINT_DIR}{os.sep}{step}.orbax-checkpoint-tmp"
    failed: list[str] = []
    real_open, real_rename = builtins.open, os.rename

    def fake_open(file, mode="r", *args, **kwargs):
        name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else ""
        writing = any(c in mode for c in "wax+")
        hit = stage == "first_write" or (
            stage == "after_arrays" and name.endswith(f"state.orbax-checkpoint-tmp{os.sep}_METADATA")
        )
        if writing and tmp in name and hit:
            failed.append(name)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
        return real_open(file, mode, *args, **kwargs)

    def fake_rename(src, dst, *args, **kwargs):
        if stage == "commit" and os.fspath(src).endswith(tmp):
            failed.append(os.fspath(src))
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(src))
        return real_rename(src, dst, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "open", fake_open)
        mp.setattr(os, "rename", fake_rename)
        yield failed


@pytest.mark.parametrize("stage, code", [("first_write", "ENOSPC"), ("after_arrays", "ENOSPC"), ("commit", "EACCES")])
def test_failed_save_stops_with_one_line_and_resume_is_exact(
    stage, code, shared_trainer, reference, tmp_path, capfd, caplog
):
    run_dir = tmp_path / "run"
    capfd.readouterr()
    with fault(stage, FAILING_STEP) as failed, caplog.at_level(logging.WARNING):
        status = humanoid_run.main([*TINY, "--out", str(run_dir)])
    err = capfd.readouterr().err
    assert failed, "the fault was never hit"
    # Orbax logs its writer threads' tracebacks through absl; outside pytest they reach stderr.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert status == 1, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(
        f"error: {run_dir / CHECKPOINT_DIR / str(FAILING_STEP)}: checkpoint could not be written ({code}: "
    ), err
    assert err.rstrip().endswith(f"the checkpoints saved before are intact; continue with --resume {run_dir}"), err

    # Only the first checkpoint exists; nothing half written is left for a resume to pick.
    assert sorted(p.name for p in (run_dir / CHECKPOINT_DIR).iterdir()) == [str(ITERATION)]
    store = CheckpointStore(run_dir, read_only=True)
    assert store.steps() == [ITERATION]
    assert store.restore().step == ITERATION
    store.close()

    assert humanoid_run.main(["--resume", str(run_dir), "--progress", "none"]) == 0
    assert _final_leaves(run_dir) == reference


def test_failed_save_of_a_store_names_the_directory_and_keeps_older_steps(tmp_path):
    """The store alone: a failed save raises CheckpointSaveError and leaves the older steps."""
    store = CheckpointStore(tmp_path, keep=1)
    tree = {"w": np.arange(3, dtype=np.float32)}
    store.save(10, tree, {"c": 1}, {})
    with fault("first_write", 20), pytest.raises(CheckpointSaveError) as info:
        store.save(20, tree, {"c": 1}, {})
    assert str(info.value).startswith(f"{tmp_path / CHECKPOINT_DIR / '20'}: checkpoint could not be written (ENOSPC: ")
    assert isinstance(info.value, checkpoint.CheckpointError)
    assert store.steps() == [10]
    store.save(20, tree, {"c": 1}, {})  # the store works again once the disk does
    assert store.steps() == [20]
    store.close()

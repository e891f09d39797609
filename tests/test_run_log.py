"""RunLog alone (no compile): the ETA counts training alone, progress notes respect the mode."""

from __future__ import annotations

import json

import pytest

from jaxhum.run import log as runlog


class FakeTime:
    """A settable clock for TrainingClock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_training_clock_leaves_out_the_first_iteration_and_evaluations():
    """A run of 320 env steps, 16 per iteration: the first iteration ends at t=30 s (mostly
    compiling), iterations 2-3 take 2 s, an evaluation then takes 8 s, iterations 4-6 take 4 s."""
    time = FakeTime()
    clock = runlog.TrainingClock(now=time)
    assert not clock.started and clock.rate() is None
    time.now = 30.0
    clock.start(16)  # after the first iteration
    assert clock.lap(16) is None and clock.rate() is None  # no step since the start: nothing measured
    time.now = 32.0
    assert clock.lap(48) == pytest.approx(32 / 2)  # the log point at step 48: this stretch's rate
    time.now = 40.0  # the evaluation's 8 s
    clock.start(48)
    time.now = 44.0
    assert clock.lap(96) == pytest.approx(48 / 4)
    # (32 + 48) steps in (2 + 4) s; neither the 30 s of the first iteration nor the 8 s of evaluation.
    assert clock.rate() == pytest.approx(80 / 6)
    assert runlog.eta_seconds(320 - 96, clock.rate()) == pytest.approx(224 * 6 / 80)  # 16.8 s
    assert runlog.eta_seconds(0, 10.0) == 0.0
    assert runlog.eta_seconds(100, None) is None


def test_progress_lines_show_the_training_eta(tmp_path, capsys):
    log = runlog.RunLog(tmp_path, total_steps=320, progress="lines", tensorboard=False)
    log.note("compiling the training iteration (first call; cached compiles are faster)...")
    log.log(16, 30.0, {"train/steps_per_second": 0.5})  # no training rate measured yet: no ETA
    log.log(96, 44.0, {"train/steps_per_second": 12.0, "train/episode_reward": 3.0,
                       "train/episodes_finished": 2}, train_rate=80 / 6)
    log.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "compiling the training iteration (first call; cached compiles are faster)...",
        "step 16/320 (5.0%) | 0 steps/s",
        "step 96/320 (30.0%) | 12 steps/s | train return 3.0 | eta 0m16s",  # 224 steps at 80/6 steps/s
    ]
    rows = [json.loads(line) for line in (tmp_path / runlog.METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in rows] == [16, 96] and rows[1]["wall_s"] == 44.0


def test_the_bar_shows_the_training_eta(tmp_path, capsys):
    log = runlog.RunLog(tmp_path, total_steps=320, progress="bar", tensorboard=False)
    log.log(96, 44.0, {"train/steps_per_second": 12.0}, train_rate=80 / 6)
    log.close()
    assert "eta=0m16s" in capsys.readouterr().err


def test_notes_are_silent_with_progress_none_messages_are_not(tmp_path, capsys):
    log = runlog.RunLog(tmp_path, total_steps=320, progress="none", tensorboard=False)
    log.note("compiling the evaluation (first call; cached compiles are faster)...")
    log.log(96, 44.0, {"train/steps_per_second": 12.0}, train_rate=80 / 6)
    log.message("resumed RUN at step 96")
    log.close()
    runlog.note("initialising the training state ...", "none")
    runlog.note("initialising the training state ...", "lines")
    assert capsys.readouterr().out.splitlines() == ["resumed RUN at step 96", "initialising the training state ..."]

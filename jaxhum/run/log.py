"""Run-directory logging: metrics.jsonl, TensorBoard event files and progress output.

Named `runlog` rather than `logging` so that `import logging` inside the package (and in the
libraries it uses) always means the standard library.

Every log point writes one JSON object per line to `metrics.jsonl` (`step` in env steps,
`wall_s`, then the metrics) and the same scalars to TensorBoard (tensorboardX, imported only
when a log is opened). Progress goes to a tqdm bar when stderr is a terminal and `CI` is not
set, otherwise to one plain line per log point on stdout. The ETA counts training alone: the
remaining env steps at the rate of the training iterations (`TrainingClock`), without the
compiles, evaluations and checkpoint saves.

A run also announces its phase on stderr, one `phase: <name>` line each (`phase_line`; silent
with progress 'none'): `compiling` when it starts building and compiling its programs (init or
restore, then the first iteration), `training from step S` once its first iteration is done. The
job service reads them (`parse_phase`) to show a job's phase and to give an ETA only from then on.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "PHASES", "RunLog", "TrainingClock", "announce_phase", "eta_seconds", "note", "parse_phase", "phase_line",
    "read_json", "read_metrics", "truncate_metrics", "use_progress_bar", "write_json",
]

METRICS_FILE = "metrics.jsonl"
PROGRESS_MODES = ("auto", "bar", "lines", "none")
# The phases a run's process announces, in order: building and compiling, then training.
PHASES = ("compiling", "training")
_PHASE_PREFIX = "phase: "


def phase_line(phase: str, step: int | None = None, detail: str = "") -> str:
    """'phase: <phase>[ from step <step>][ (<detail>)]', the line `parse_phase` reads back."""
    if phase not in PHASES:
        raise ValueError(f"phase: must be one of {', '.join(PHASES)}, got {phase!r}")
    return (_PHASE_PREFIX + phase + (f" from step {int(step)}" if step is not None else "")
            + (f" ({detail})" if detail else ""))


def parse_phase(line: str) -> tuple[str, int | None] | None:
    """(phase, step or None) of a `phase_line`; None for any other line."""
    if not line.startswith(_PHASE_PREFIX):
        return None
    words = line[len(_PHASE_PREFIX):].split(" (", 1)[0].split()
    if not words or words[0] not in PHASES:
        return None
    if words[1:3] == ["from", "step"] and len(words) > 3 and words[3].isdigit():
        return words[0], int(words[3])
    return words[0], None


def announce_phase(phase: str, progress: str, step: int | None = None, detail: str = "") -> None:
    """Prints the `phase_line` on stderr, unless progress is 'none'."""
    if progress != "none":
        print(phase_line(phase, step, detail), file=sys.stderr, flush=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes `obj` as indented JSON atomically (temporary file, then rename)."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON object in a file written by `write_json`."""
    return json.loads(pathlib.Path(path).read_text())


def _scalar(value: Any) -> float | int | None:
    """A host float (None for NaN/inf, which strict JSON cannot hold)."""
    if isinstance(value, (bool, int)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All log points of a run, oldest first (a torn last line from a kill is skipped)."""
    path = pathlib.Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_metrics(run_dir: str | os.PathLike, max_step: int) -> None:
    """Keeps only log points with step <= max_step (a resumed run redoes the later ones)."""
    path = pathlib.Path(run_dir) / METRICS_FILE
    if not path.exists():
        return
    kept = [row for row in read_metrics(run_dir) if row.get("step", 0) <= max_step]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
    os.replace(tmp, path)


def use_progress_bar(mode: str) -> bool:
    """'auto' means a bar when stderr is a terminal and the CI variable is unset."""
    if mode == "auto":
        return sys.stderr.isatty() and not os.environ.get("CI")
    return mode == "bar"


def note(text: str, progress: str) -> None:
    """A progress note (e.g. 'compiling ...') before a `RunLog` is open: printed unless progress is 'none'."""
    if progress != "none":
        print(text, flush=True)


class TrainingClock:
    """The wall time of the training iterations alone, for steps/s and the ETA.

    A stretch of training starts at `start(step)` (after the run's first iteration, whose time
    is mostly compiling, and again after every evaluation and checkpoint save) and ends at
    `lap(step)`, once the device has finished `step`; compiles, evaluations and saves fall
    between stretches, so `rate` is the speed of training itself.

    Args:
      now: the clock in seconds (`time.monotonic`; tests pass a fake one).
    """

    def __init__(self, now: Callable[[], float] = time.monotonic):
        self._now = now
        self._mark: tuple[float, int] | None = None  # (time, step) where the current stretch began
        self.steps = 0  # env steps of the finished stretches
        self.seconds = 0.0  # their wall time

    @property
    def started(self) -> bool:
        return self._mark is not None

    def start(self, step: int) -> None:
        """A stretch of training begins at `step` (env steps), now."""
        self._mark = (self._now(), int(step))

    def lap(self, step: int) -> float | None:
        """Ends the stretch at `step`: its env steps per second (None when no step since `start`).

        The stretch counts towards `rate`; call `start` before the next one.
        """
        if self._mark is None or step <= self._mark[1]:
            return None
        since, first = self._mark
        seconds = self._now() - since
        self.steps += step - first
        self.seconds += seconds
        return (step - first) / seconds if seconds > 0 else None

    def rate(self) -> float | None:
        """Env steps per second over every finished stretch (None before the first)."""
        return self.steps / self.seconds if self.steps > 0 and self.seconds > 0 else None


def eta_seconds(remaining_steps: int, steps_per_second: float | None) -> float | None:
    """Seconds left: remaining env steps / the training rate (None without a rate)."""
    if steps_per_second is None or not steps_per_second > 0:
        return None
    return max(remaining_steps, 0) / steps_per_second


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class RunLog:
    """The writers of one run directory.

    Args:
      run_dir: where metrics.jsonl and the event files go.
      total_steps: env steps the run will reach (for progress and ETA).
      start_step: env steps already done (non-zero on resume).
      progress: 'auto', 'bar', 'lines' or 'none'.
      tensorboard: write TensorBoard event files.
    """

    # tqdm's own rate and remaining time would count the compiles; the ETA is in the postfix.
    BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def __init__(
        self,
        run_dir: str | os.PathLike,
        total_steps: int,
        start_step: int = 0,
        progress: str = "auto",
        tensorboard: bool = True,
    ):
        self.run_dir = pathlib.Path(run_dir)
        self.total_steps = total_steps
        self.start_step = start_step
        self._metrics = open(self.run_dir / METRICS_FILE, "a", buffering=1)
        self._writer = None
        if tensorboard:
            from tensorboardX import (
                SummaryWriter,  # optional at import time, needed here
            )

            # purge_step hides events a killed run logged past the checkpoint we resumed from.
            self._writer = SummaryWriter(
                logdir=str(self.run_dir), purge_step=start_step + 1 if start_step else None
            )
        self._bar = None
        self._lines = False
        self._quiet = progress == "none"
        if not self._quiet:
            if use_progress_bar(progress):
                from tqdm import tqdm

                self._bar = tqdm(
                    total=total_steps, initial=start_step, unit="step", unit_scale=True,
                    dynamic_ncols=True, file=sys.stderr, bar_format=self.BAR_FORMAT,
                )
            else:
                self._lines = True
        self._last_eval: float | None = None

    def log(
        self, step: int, wall_s: float, metrics: Mapping[str, Any], train_rate: float | None = None
    ) -> dict[str, Any]:
        """Writes one log point; `metrics` are host scalars keyed like 'train/episode_reward'.

        `train_rate` (env steps per second of training alone, `TrainingClock.rate`) gives the
        progress display's ETA; None shows none.
        """
        row: dict[str, Any] = {"step": int(step), "wall_s": round(float(wall_s), 3)}
        row.update({k: _scalar(v) for k, v in sorted(metrics.items())})
        self._metrics.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for key, value in row.items():
                if key != "step" and value is not None:
                    self._writer.add_scalar(key, value, global_step=int(step))
            self._writer.flush()
        if row.get("eval/episode_reward") is not None:
            self._last_eval = row["eval/episode_reward"]
        self._progress(step, row, eta_seconds(self.total_steps - step, train_rate))
        return row

    def _progress(self, step: int, row: Mapping[str, Any], eta: float | None) -> None:
        train_return = row.get("train/episode_reward")
        if row.get("train/episodes_finished") == 0:
            train_return = None  # no episode ended in this iteration: nothing to report
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            postfix = {}
            if train_return is not None:
                postfix["train"] = f"{train_return:.1f}"
            if self._last_eval is not None:
                postfix["eval"] = f"{self._last_eval:.1f}"
            if eta is not None:
                postfix["eta"] = _duration(eta)
            self._bar.set_postfix(postfix, refresh=True)
        elif self._lines:
            parts = [f"step {step}/{self.total_steps} ({100.0 * step / max(self.total_steps, 1):.1f}%)"]
            sps = row.get("train/steps_per_second")
            if sps is not None:
                parts.append(f"{sps:,.0f} steps/s")
            if train_return is not None:
                parts.append(f"train return {train_return:.1f}")
            if row.get("eval/episode_reward") is not None:
                parts.append(f"eval return {row['eval/episode_reward']:.1f}")
            if eta is not None:
                parts.append(f"eta {_duration(eta)}")
            print(" | ".join(parts), flush=True)

    def message(self, text: str) -> None:
        """A line of text that does not break the progress bar."""
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def phase(self, phase: str, step: int | None = None, detail: str = "") -> None:
        """Announces a phase (`phase_line`) on stderr without breaking the progress bar; silent
        with progress 'none'."""
        if self._quiet:
            return
        if self._bar is not None:
            self._bar.write(phase_line(phase, step, detail), file=sys.stderr)
        else:
            print(phase_line(phase, step, detail), file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """A progress note (e.g. 'compiling ...'): a `message`, unless progress is 'none'."""
        if not self._quiet:
            self.message(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._metrics.close()

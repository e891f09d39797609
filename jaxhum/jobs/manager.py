"""Job processes: start, queue, monitor, cancel, resume, and recovery after a server restart.

A job runs as `python -m experiments.<task> ... --out DATA/runs/<id> --progress lines` with
stdout and stderr appended to `DATA/logs/<id>.log`, in its own session (a Ctrl-C meant for the
server never reaches it) and with the server's environment. At most `max_concurrent` jobs run;
the others wait in submission order.

A monitor thread polls every `poll_interval` seconds: it reads the newest rows of each running
job's metrics.jsonl (step, latest eval return, rate, ETA) and turns exit statuses into job
statuses (`outcome`).

Each job also has a phase (`PHASES`, `Manager.phase`): queued; starting (its process imports,
checks its config and builds its task); compiling and training, as the runner announces them in
the log (`jaxhum.run.log.phase_line`: `phase: compiling`, then `phase: training from step S`
once the first iteration is done); stopping (SIGTERM sent: it saves a checkpoint); ended. The
ETA is given only in the training phase, so a compiling job (or a resumed one, whose old log
points say nothing of this process) shows none.

When the server stops (`begin_stop`, from its signal handler, then `stop`), no job starts any
more and the running ones get SIGTERM at once: each saves a checkpoint and exits (one still
starting up, before its training loop, has no checkpoint yet and just exits; one in its first,
compiling iteration finishes it and saves); one still running `stop_timeout` seconds after the
signal is killed, losing only the work since its last checkpoint. They are recorded as
`resumable` (or `failed` without a checkpoint), and `POST /jobs/{id}/resume` continues them.

No window in which a job could run twice: a job is recorded `starting` before its process is
spawned, and the process carries its id in its environment (`MARKER_ENV`); once spawned it is
recorded `running` with its pid. On start, a job recorded as running whose process is gone is
settled as above; one whose process still runs (same pid AND same start time, as pids get
reused; e.g. the server was SIGKILLed) is adopted and watched again. A job recorded `starting`
(the server died between the two records) is adopted if a live process carries its marker,
else settled the same way (never spawned again). Queued jobs start again.

Every file of a job the manager reads or writes (its log, its run directory's metrics.jsonl and
checkpoints) is reached through `jaxhum.jobs.files`: inside the data directory, never through a
symbolic link. A job whose log or run directory is a link (or reached through one) is not
started: it fails with a line saying so, and nothing is written through the link.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxhum.jobs import files as files_lib
from jaxhum.jobs import tasks as tasks_lib
from jaxhum.jobs.store import ACTIVE, Job, Store, utc_now
from jaxhum.run import log as runlog

__all__ = ["MARKER_ENV", "PHASES", "Conflict", "Manager", "experiment_command", "find_marked", "log_phase", "outcome",
           "process_start_time", "progress"]

# A job's phase (`Manager.phase`), in the order a job goes through them.
PHASES = ("queued", "starting", "compiling", "training", "stopping", "ended")
_LAUNCH_PREFIX = b"[jaxhum.jobs "  # the manager's own lines in a job's log; the last one before a run is its command

# The environment variable that carries a job's id into its process, so that a restarted server
# recognizes the process of a job it recorded as `starting` (`find_marked`).
MARKER_ENV = "JAXHUM_JOBS_JOB_ID"

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)  # as -signum (Popen) or 128 + signum (the runner)
_TAIL_BYTES = 65536  # enough for the last few rows of metrics.jsonl
_LAST_LINE_BYTES = 4096  # of a log, for the line that says why a job failed
_LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT
_NO_LINKS = "the service reads and writes a job's files only inside its data directory, never through a symbolic link"


class Conflict(ValueError):
    """The job is in a status that does not allow the request (one line)."""


# ----------------------------------------------------------------------------- processes


def process_start_time(pid: int) -> str:
    """The start time of a live process in clock ticks after boot ('' if gone or a zombie).

    Together with the pid it names one process: a pid reused by another process has another
    start time. Read from /proc (Linux).
    """
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return "" if fields[0] in ("Z", "X") else fields[19]


def find_marked(job_id: str, proc: str = "/proc") -> tuple[int, str] | None:
    """(pid, start time) of the oldest live process whose environment holds `MARKER_ENV=job_id`
    (a job's own children inherit it: the oldest is the job), None if there is none.

    Reads /proc/<pid>/environ (Linux), readable for the processes of the server's own user:
    those are the only ones it starts.
    """
    needle = f"{MARKER_ENV}={job_id}".encode()
    found = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            environ = pathlib.Path(entry.path, "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0"):
            start = process_start_time(int(entry.name))
            if start:
                found.append((int(start), int(entry.name), start))
    return min(found)[1:] if found else None


def experiment_command(task: str, args: Sequence[str]) -> list[str]:
    """A job's command line: `python -m experiments.<task> <args>` with the server's Python."""
    return [sys.executable, "-m", f"experiments.{task}", *args]


@dataclasses.dataclass
class _Process:
    """A job's process: our child (popen) or one adopted from a previous server (pid only)."""

    pid: int
    start_time: str
    popen: subprocess.Popen | None = None
    started: float = 0.0  # time.time() at launch (0 for an adopted process)
    terminated: bool = False  # SIGTERM sent (a cancel or the stop): a second one would abort the checkpoint
    phase: str = "starting"  # starting, compiling or training, from the run's phase lines (`log_phase`)
    training_from: int | None = None  # the step at which this process's training began

    def poll(self) -> tuple[bool, int | None]:
        """(finished, exit status); the status of an adopted process is unknown (None)."""
        if self.popen is not None:
            code = self.popen.poll()
            return code is not None, code
        return process_start_time(self.pid) != self.start_time, None

    def signal(self, signum: int) -> None:
        if not self.poll()[0]:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        """SIGTERM, once: the run saves a checkpoint and exits."""
        if not self.terminated:
            self.terminated = True
            self.signal(signal.SIGTERM)


# ----------------------------------------------------------------------------- run directory


def _tail_rows(data: bytes, cut: bool) -> list[dict[str, Any]]:
    """The complete JSON rows in the tail `data` of a metrics.jsonl (`cut`: its first line is
    cut, the file being longer), oldest first."""
    lines = data.decode(errors="replace").split("\n")
    if cut:
        lines = lines[1:]
    rows = []
    for line in lines[:-1]:  # the last piece has no newline yet (or is empty)
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def log_phase(data: bytes) -> tuple[str, int | None]:
    """(phase, step) of the run whose output ends a job's log: its last `phase:` line after the
    manager's last own line (the command that started it), else ('starting', None).

    `data` may be the log's tail: if the command line was cut off, all of it is the run's.
    """
    start = data.rfind(b"\n" + _LAUNCH_PREFIX)
    found: tuple[str, int | None] = ("starting", None)
    for line in data[start + 1 if start >= 0 else 0:].decode(errors="replace").splitlines():
        parsed = runlog.parse_phase(line.strip())
        if parsed is not None:
            found = parsed
    return found


def progress(job: Job, rows: Sequence[dict[str, Any]], mtime: float, since: float = 0.0,
             phase: str = "training", training_from: int | None = None) -> dict[str, Any]:
    """step, eval_return, steps_per_second and eta (ISO UTC) from the run's metrics.jsonl.

    Args:
      rows: the last rows of metrics.jsonl, oldest first.
      mtime: the file's modification time (time.time() seconds).
      since: the time.time() the job's process started.
      phase: the job's phase (`PHASES`): the ETA is given only in 'training'.
      training_from: the step at which this process's training began (its `phase: training`
        line): the rate is measured only between log points from there on.

    The rate is measured between the last two log points (so evaluation and checkpoint time
    count); with one point it is that point's `train/steps_per_second` (the first iteration's
    point counts its compile: that first ETA is pessimistic until the next point). The ETA is
    the time of the last point plus the remaining steps at that rate, None outside the training
    phase and until the process started at `since` has logged a point: a resumed run's old
    points say nothing about it. Empty before the first log point.
    """
    rows = [r for r in rows if isinstance(r.get("step"), int)]
    if not rows:
        return {}
    last = rows[-1]
    rate = None
    if len(rows) >= 2 and (training_from is None or rows[-2]["step"] >= training_from):
        d_step = last["step"] - rows[-2]["step"]
        d_wall = last.get("wall_s", 0) - rows[-2].get("wall_s", 0)
        if d_step > 0 and d_wall > 0:
            rate = d_step / d_wall
    if rate is None:
        rate = last.get("train/steps_per_second")
    out: dict[str, Any] = {"step": last["step"], "steps_per_second": rate, "eta": None}
    if rate and rate > 0 and mtime >= since and phase == "training":
        remaining = max(job.num_timesteps - last["step"], 0)
        eta = datetime.datetime.fromtimestamp(mtime + remaining / rate, datetime.UTC)
        out["eta"] = eta.isoformat(timespec="seconds")
    evals = [r["eval/episode_reward"] for r in rows if r.get("eval/episode_reward") is not None]
    if evals:
        out["eval_return"] = evals[-1]
    return out


def outcome(job: Job, exit_code: int | None, *, summary: bool, checkpoint: bool, last_line: str,
            gone: str = "process gone") -> tuple[str, str]:
    """(status, error) of a job whose process ended with `exit_code` (None: unknown).

    Args:
      summary: the run wrote eval_summary.json (it finished).
      checkpoint: the run holds a complete checkpoint.
      last_line: the log's last non-empty line.
      gone: how the error says an unknown status came about.

    0 -> succeeded; after a cancel -> cancelled; 2 -> failed (bad input, the runner's line);
    stopped by a signal we did not send as a cancel (SIGTERM/SIGINT: the server stopped, or
    someone else; SIGKILL: killed after the stop timeout, or by the OOM killer) or gone with an
    unknown status -> resumable when a checkpoint exists, else failed; any other status ->
    failed with the log's last line.
    """
    if exit_code == 0 or (exit_code is None and summary):
        return "succeeded", ""
    if job.cancel_requested:
        return "cancelled", "" if checkpoint else "cancelled before the first checkpoint"
    if exit_code == 2:
        return "failed", last_line
    if exit_code is None or abs(exit_code) in _STOP_SIGNALS or exit_code - 128 in _STOP_SIGNALS:
        how = gone if exit_code is None else f"stopped by a signal (exit status {exit_code})"
        if checkpoint:
            return "resumable", f"{how}; POST /jobs/{job.id}/resume continues from the checkpoint"
        return "failed", f"{how} before the first checkpoint"
    return "failed", f"exit status {exit_code}: {last_line}"


# ----------------------------------------------------------------------------- the manager


class Manager:
    """Starts, queues, watches and stops job processes; the job table is the only state kept
    across restarts (the process handles are rebuilt from it by `start`)."""

    def __init__(
        self,
        store: Store,
        data_dir: str | os.PathLike,
        tasks: Mapping[str, tasks_lib.Task],
        max_concurrent: int = 1,
        stop_timeout: float = 60.0,
        poll_interval: float = 0.5,
        env: Mapping[str, str] | None = None,
        allowed_roots: Sequence[str] = (),
        program: Callable[[str, Sequence[str]], list[str]] | None = None,
        after_spawn: Callable[[Job, int], None] | None = None,
    ):
        """Args:
          program: a job's command line from its task and arguments (default `experiment_command`;
            tests and the load benchmark give a stand-in).
          after_spawn: called with the job and its pid right after its process is spawned, before
            it is recorded running (tests: a fault injected into that window).
        """
        self.store = store
        self.data_dir = pathlib.Path(data_dir).resolve()
        self.tasks = dict(tasks)
        # Where a job's env.model_path and init_from may point (resolved); default: the data directory.
        self.allowed_roots = tuple(os.path.realpath(r) for r in allowed_roots) or (str(self.data_dir),)
        self.max_concurrent = max_concurrent
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self.program = program or experiment_command
        self.after_spawn = after_spawn
        # Unbuffered, so the log follows the run line by line.
        self.env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
        self._procs: dict[str, _Process] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._deadline: float | None = None  # time.monotonic() by which the stopping jobs are killed
        self._thread: threading.Thread | None = None
        (self.data_dir / "runs").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)

    # -- lifecycle

    def start(self) -> None:
        """Settles jobs left running or starting by a previous server, starts queued ones and the monitor."""
        with self._lock:
            for job in self.store.list("starting", "running"):
                self._recover(job)
            self._schedule()
        self._thread = threading.Thread(target=self._monitor, name="jaxhum-jobs-monitor", daemon=True)
        self._thread.start()

    def _recover(self, job: Job) -> None:
        """Adopts the live process of a job a previous server recorded, else settles the job."""
        if job.status == "running":
            alive = job.pid and job.pid_start and process_start_time(job.pid) == job.pid_start
            found = (job.pid, job.pid_start) if alive else None
        else:  # starting: the server stopped between recording the job and recording its pid
            found = find_marked(job.id)
        if found is None:
            gone = "process gone" if job.status == "running" else "the server stopped while starting it"
            self._finish(job, None, gone=gone)
            return
        self._procs[job.id] = _Process(*found, terminated=job.cancel_requested)  # adopted
        if job.status == "starting":
            self.store.update(job.id, status="running", pid=found[0], pid_start=found[1],
                              started_at=job.started_at or utc_now())

    @property
    def stopping(self) -> bool:
        """Whether the server is stopping (`begin_stop`): followers end, no job starts."""
        return self._stop.is_set()

    def begin_stop(self) -> None:
        """Starts no more jobs and sends SIGTERM to the running ones, at once; `stop` then waits
        for them until `stop_timeout` seconds from now.

        Takes no lock and never blocks, so a signal handler may call it (again too)."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self.stop_timeout
        self._stop.set()
        for proc in list(self._procs.values()):  # one being spawned now is signalled by `stop`
            proc.terminate()

    def stop(self) -> None:
        """Stops the monitor and every running job (SIGTERM -> checkpoint; killed `stop_timeout`
        seconds after `begin_stop`, or after this call without one)."""
        self.begin_stop()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for proc in self._procs.values():
                proc.terminate()
            deadline = self._deadline
            while self._procs:
                for job_id, proc in list(self._procs.items()):
                    finished, code = proc.poll()
                    if not finished and time.monotonic() > deadline:
                        proc.signal(signal.SIGKILL)
                        if proc.popen is not None:
                            code = proc.popen.wait()
                        finished = True
                    if finished:
                        del self._procs[job_id]
                        self._finish(self.store.get(job_id), code)
                time.sleep(0.1)

    # -- requests

    @staticmethod
    def new_id() -> str:
        """A fresh job id: 32 lowercase hex digits."""
        return uuid.uuid4().hex

    def submit(self, job_id: str, task: str, policy_type: str, argv: Sequence[str], num_timesteps: int,
               seed: int | None, preset: str | None) -> Job:
        """Records a checked job (argv without --out) as queued and starts it if a slot is free."""
        job = Job(
            id=job_id, task=task, policy_type=policy_type, status="queued", argv=tuple(argv),
            num_timesteps=num_timesteps, run_dir=str(self.run_dir(job_id)), log_path=str(self.log_path(job_id)),
            created_at=utc_now(), seed=seed, preset=preset,
        )
        with self._lock:
            self.store.insert(job)
            self._schedule()
            return self.store.get(job_id)

    def cancel(self, job_id: str) -> Job:
        """A queued job is cancelled at once; a running one gets SIGTERM (checkpoint, then exit).

        Raises:
          KeyError: unknown job. Conflict: the job has already ended.
        """
        with self._lock:
            job = self._get(job_id)
            if job.status == "queued":
                return self.store.update(job_id, status="cancelled", finished_at=utc_now(), resume_next=False)
            if job.status != "running":
                raise Conflict(f"status: the job is {job.status}; only queued or running jobs can be cancelled")
            if not job.cancel_requested:
                job = self.store.update(job_id, cancel_requested=True)
                self._procs[job_id].terminate()  # once: a second SIGTERM would stop it without a checkpoint
            return job

    def resume(self, job_id: str, resume_timesteps: int, num_timesteps: int) -> Job:
        """Queues a stopped job to continue from its newest checkpoint (check it with `resume_argv`).

        Args:
          resume_timesteps: a new num_timesteps for the run (0 keeps the saved one).
          num_timesteps: the env steps the resumed run trains to.
        Raises:
          KeyError: unknown job. Conflict: the job is not stopped, or has no checkpoint.
        """
        with self._lock:
            job = self._get(job_id)
            self.check_resumable(job)
            self.store.update(
                job_id, status="queued", resume_next=True, resume_timesteps=resume_timesteps,
                num_timesteps=num_timesteps, cancel_requested=False, exit_code=None, error="", finished_at="", eta=None,
            )
            self._schedule()
            return self.store.get(job_id)

    def delete(self, job_id: str, files: bool = False) -> bool:
        """Removes an ended job's row; with `files` also its run directory and log (the paths this
        server gives a job, inside the data directory; a symlink there is removed, never followed;
        nothing is removed through a linked runs/ or logs/ folder).

        Returns whether the files were removed (False: one was left, reached through a link). Raises:
          KeyError: unknown job. Conflict: the job is queued or running (cancel it first).
        """
        with self._lock:
            job = self._get(job_id)
            if job.status in ACTIVE:
                raise Conflict(f"status: the job is {job.status}; cancel it first (only ended jobs can be deleted)")
            self.store.delete(job_id)
        if not files:
            return False
        removed = [files_lib.remove(self.data_dir, p) for p in (self.run_dir(job_id), self.log_path(job_id))]
        return all(removed)

    def resume_argv(self, job: Job, resume_timesteps: int) -> list[str]:
        """The experiment's command line that continues `job` (resume_timesteps 0: as saved)."""
        return (["--resume", str(self.run_dir(job.id))]
                + (["--num-timesteps", str(resume_timesteps)] if resume_timesteps else []))

    def check_resume_length(self, job: Job, num_timesteps: int, field: str = "num_timesteps") -> None:
        """A resume's new length must lie past the step the job reached (logged or checkpointed).

        Raises:
          Conflict: one line naming that step (`field`: the request's field that set the length).
        """
        reached = max(job.step, *self.checkpoint_steps(job.id), 0)
        if num_timesteps <= reached:
            raise Conflict(f"{field}: the job has reached step {reached}; a resume must train past it, "
                           f"got {num_timesteps} env steps")

    def check_resumable(self, job: Job) -> None:
        """A stopped job whose run directory holds a checkpoint and no symbolic link (the resumed
        run reads the whole directory, checkpoints included).

        Raises:
          Conflict: one line on why not.
        """
        if job.status not in ("cancelled", "failed", "resumable"):
            raise Conflict(f"status: the job is {job.status}; only cancelled, failed or resumable jobs can be resumed")
        try:
            self.check_run_dir(job, resume=True)
        except files_lib.Refused as err:
            raise Conflict(f"run_dir: {err}; {_NO_LINKS}") from None
        if not self.checkpoint_steps(job.id):
            raise Conflict(f"{job.id}: the run has no checkpoint to resume from; submit the job again")

    def check_paths(self, task: tasks_lib.Task, argv: Sequence[str]) -> None:
        """`task.check_paths` against this server's allowed roots (`--allow-path`).

        Raises:
          tasks_lib.InvalidJob: one line.
        """
        task.check_paths(argv, self.allowed_roots)

    # -- paths and files (all inside data_dir, never through a link)

    def run_dir(self, job_id: str) -> pathlib.Path:
        return self.data_dir / "runs" / job_id

    def log_path(self, job_id: str) -> pathlib.Path:
        return self.data_dir / "logs" / f"{job_id}.log"

    def open_log(self, job_id: str, flags: int = os.O_RDONLY) -> int:
        """An fd of the job's log (`files.open_file`; the caller closes it).

        Raises:
          FileNotFoundError: no log yet (without O_CREAT). files.Refused: a link, not a regular file.
        """
        return files_lib.open_file(self.data_dir, self.log_path(job_id), flags)

    def checkpoint_steps(self, job_id: str) -> list[int]:
        """The steps of the job's complete checkpoints (Orbax names complete ones by their step);
        a linked checkpoints/ folder or step directory does not count."""
        try:
            names = files_lib.subdirs(self.data_dir, self.run_dir(job_id) / "checkpoints")
        except files_lib.Refused:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    def check_run_dir(self, job: Job, resume: bool = False) -> None:
        """The job's run directory is missing or a directory reached without links (`resume`:
        and holding none).

        Raises:
          files.Refused: one line naming the link.
        """
        run_dir = self.run_dir(job.id)
        files_lib.check_dir(self.data_dir, run_dir)
        link = files_lib.first_link(self.data_dir, run_dir) if resume else None
        if link is not None:
            raise files_lib.Refused(f"{run_dir / link} is a symbolic link")

    def _last_line(self, job_id: str) -> str:
        """The last non-empty line of the job's log ('' if none, or refused)."""
        try:
            data, _ = files_lib.read_tail(self.data_dir, self.log_path(job_id), _LAST_LINE_BYTES)
        except (OSError, files_lib.Refused):
            return ""
        lines = data.decode(errors="replace").splitlines()
        return next((line.strip() for line in reversed(lines) if line.strip()), "")

    def _progress(self, job: Job, since: float = 0.0, proc: _Process | None = None) -> dict[str, Any]:
        """`progress` from the job's metrics.jsonl ({} without one, or refused); with the job's
        process `proc`, its phase is brought up to date first (`_watch_phase`)."""
        try:
            data, info = files_lib.read_tail(self.data_dir, self.run_dir(job.id) / "metrics.jsonl", _TAIL_BYTES)
        except (OSError, files_lib.Refused):
            data, info = b"", None
        rows = [] if info is None else _tail_rows(data, info.st_size > _TAIL_BYTES)
        if proc is not None:  # the log after the metrics: a run writes its phase line before its first point
            self._watch_phase(job, proc, logged=bool(rows) and info.st_mtime >= since)
        if info is None:
            return {}
        if proc is None:
            return progress(job, rows, info.st_mtime, since)
        return progress(job, rows, info.st_mtime, since, phase=proc.phase, training_from=proc.training_from)

    def _watch_phase(self, job: Job, proc: _Process, logged: bool) -> None:
        """Follows the phase lines of a running job's log until it trains (the phase only moves
        on). A log point from this process (`logged`) while none was announced also means it
        trains (a program that announces no phase); a resumed run's restore rewrites its old
        points after its `phase: compiling` line, so they never count."""
        if proc.phase == "training":
            return
        try:
            data, _ = files_lib.read_tail(self.data_dir, self.log_path(job.id), _TAIL_BYTES)
        except (OSError, files_lib.Refused):
            data = b""
        proc.phase, proc.training_from = log_phase(data)
        if logged and proc.phase == "starting":
            proc.phase = "training"

    def phase(self, job: Job) -> str:
        """The job's phase (`PHASES`): from its status, and for a running job from its log."""
        if job.status in ("queued", "starting"):
            return job.status
        if job.status != "running":
            return "ended"
        with self._lock:
            proc = self._procs.get(job.id)
            if proc is None:
                return "starting"
            return "stopping" if proc.terminated else proc.phase

    def _append_log(self, job_id: str, line: str) -> None:
        """Appends one line to the job's log (not through a link: then the line is dropped)."""
        try:
            with os.fdopen(self.open_log(job_id, _LOG_FLAGS), "ab") as log:
                log.write(f"[jaxhum.jobs {utc_now()}] {line}\n".encode())
        except (OSError, files_lib.Refused):
            pass

    # -- internals (callers hold self._lock)

    def _get(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def _schedule(self) -> None:
        if self._stop.is_set():
            return
        for job in self.store.list("queued"):
            if len(self._procs) >= self.max_concurrent:
                break
            self._launch(job)  # one that cannot start fails at once and leaves its slot to the next

    def _launch(self, job: Job) -> None:
        """Spawns a queued job's process: recorded `starting` before the spawn, `running` with its
        pid after it (or `failed` with a line if it cannot start)."""
        if job.resume_next:
            task_args = self.resume_argv(job, job.resume_timesteps)
        else:
            task_args = [*job.argv, "--out", str(self.run_dir(job.id))]
        cmd = self.program(job.task, [*task_args, "--progress", "lines"])
        started = time.time()
        try:
            # Checked again here: a queued job may start under a server with other roots, and a
            # link may have appeared since the request was checked.
            if job.task in self.tasks:
                self.check_paths(self.tasks[job.task], job.argv)
            self.check_run_dir(job, resume=job.resume_next)
            log_fd = self.open_log(job.id, _LOG_FLAGS)
        except (tasks_lib.InvalidJob, files_lib.Refused, OSError) as err:
            why = f"{err}; {_NO_LINKS}" if isinstance(err, files_lib.Refused) else str(err)
            self.store.update(job.id, status="failed", error=f"could not start: {why}", finished_at=utc_now())
            return
        with os.fdopen(log_fd, "ab") as log:
            log.write(f"[jaxhum.jobs {utc_now()}] {shlex.join(cmd)}\n".encode())
            log.flush()
            # Recorded before the spawn: a server that dies now leaves a `starting` job, which the
            # next one adopts (by the marker) or settles, and never spawns again.
            self.store.update(job.id, status="starting", pid=None, pid_start="")
            try:
                popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**self.env, MARKER_ENV: job.id}, start_new_session=True)
            except OSError as err:
                self.store.update(job.id, status="failed", error=f"could not start: {err}", finished_at=utc_now())
                return
        if self.after_spawn is not None:
            self.after_spawn(job, popen.pid)
        start_time = process_start_time(popen.pid)
        self._procs[job.id] = _Process(popen.pid, start_time, popen, started)
        self.store.update(job.id, status="running", pid=popen.pid, pid_start=start_time,
                          started_at=job.started_at or utc_now(), eta=None)

    def _finish(self, job: Job, exit_code: int | None, gone: str = "process gone") -> None:
        summary = files_lib.is_file(self.data_dir, self.run_dir(job.id) / "eval_summary.json")
        status, error = outcome(job, exit_code, summary=summary, checkpoint=bool(self.checkpoint_steps(job.id)),
                                last_line=self._last_line(job.id), gone=gone)
        fields = self._progress(job)
        fields.pop("eta", None)
        # The log's last line first: a follower stops reading once the status has changed.
        self._append_log(job.id, f"{status}{': ' + error if error else ''}")
        self.store.update(job.id, **fields, status=status, error=error, exit_code=exit_code, finished_at=utc_now(),
                          pid=None, pid_start="", eta=None, resume_next=False)

    def tick(self) -> None:
        """One monitor pass: progress of running jobs, ended processes, queued jobs to start."""
        with self._lock:
            for job_id, proc in list(self._procs.items()):
                finished, code = proc.poll()
                job = self.store.get(job_id)
                if finished:
                    del self._procs[job_id]
                    self._finish(job, code)
                    continue
                fields = self._progress(job, since=proc.started, proc=proc)
                if any(getattr(job, k) != v for k, v in fields.items()):
                    self.store.update(job_id, **fields)
            self._schedule()

    def _monitor(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.tick()
            except Exception:  # keep watching; never fail silently
                traceback.print_exc(file=sys.stderr)

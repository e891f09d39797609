"""The job table: one SQLite file (stdlib sqlite3) in the service's data directory.

Every call opens its own short-lived connection, so the store can be used from the HTTP worker
threads and the process monitor at once; SQLite's WAL journal keeps readers and the writer apart
and a committed row survives a crash of the server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import sqlite3
from collections.abc import Iterator
from typing import Any

__all__ = ["ACTIVE", "DB_FILE", "Job", "STATUSES", "Store", "utc_now"]

DB_FILE = "jobs.sqlite3"

# queued -> starting -> running -> succeeded | failed | cancelled | resumable; resume puts a job
# back in queued. `starting` is recorded just before the job's process is spawned (and left at
# once for `running`, with its pid): a restart finding it adopts or settles the job, never spawns it.
STATUSES = ("queued", "starting", "running", "succeeded", "failed", "cancelled", "resumable")
ACTIVE = ("queued", "starting", "running")


def utc_now() -> str:
    """The current UTC time as an ISO 8601 string with seconds."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclasses.dataclass(frozen=True)
class Job:
    """One row of the job table.

    Attributes:
      id: 32 lowercase hex digits (uuid4); also names the run directory and the log file.
      task: experiment module name (`python -m experiments.<task>`).
      policy_type: the algorithm ('PPO', 'SAC' or 'TD3').
      status: one of STATUSES.
      argv: the experiment's command line without --out / --resume / --progress.
      num_timesteps: env steps the run trains to (whole iterations).
      run_dir, log_path: absolute paths inside the data directory.
      seed, preset: as resolved for the run (the preset the service chose when none was asked).
      created_at, started_at, finished_at: ISO UTC times ('' when not yet).
      pid, pid_start: the running process and its start time (clock ticks after boot, from
        /proc), so a reused pid is never mistaken for the job.
      exit_code: the last process's exit status (None while running or never started).
      cancel_requested: a cancel was sent (SIGTERM); the job ends as cancelled.
      resume_next: the next start continues from the run's newest checkpoint (--resume).
      resume_timesteps: num_timesteps given to that resume (0: keep the saved one).
      step, eval_return, steps_per_second, eta: progress from the run's metrics.jsonl.
      error: one line on why a job failed or became resumable.
    """

    id: str
    task: str
    policy_type: str
    status: str
    argv: tuple[str, ...]
    num_timesteps: int
    run_dir: str
    log_path: str
    created_at: str
    seed: int | None = None
    preset: str | None = None
    started_at: str = ""
    finished_at: str = ""
    pid: int | None = None
    pid_start: str = ""
    exit_code: int | None = None
    cancel_requested: bool = False
    resume_next: bool = False
    resume_timesteps: int = 0
    step: int = 0
    eval_return: float | None = None
    steps_per_second: float | None = None
    eta: str | None = None
    error: str = ""


_FIELDS = [f.name for f in dataclasses.fields(Job)]
_SQL_TYPES = {"int": "INTEGER", "bool": "INTEGER", "float": "REAL"}


def _column(field: dataclasses.Field) -> str:
    base = str(field.type).split(" ")[0]
    return f"{field.name} {_SQL_TYPES.get(base, 'TEXT')}" + (" PRIMARY KEY" if field.name == "id" else "")


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(list(v)) if k == "argv" else v for k, v in values.items()}


def _from_row(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["argv"] = tuple(json.loads(values["argv"]))
    values["cancel_requested"] = bool(values["cancel_requested"])
    values["resume_next"] = bool(values["resume_next"])
    values.pop("seq", None)
    return Job(**values)


class Store:
    """The job table in `data_dir/jobs.sqlite3` (created on first use)."""

    def __init__(self, data_dir: str | os.PathLike):
        self.path = pathlib.Path(data_dir) / DB_FILE
        columns = ", ".join(_column(f) for f in dataclasses.fields(Job))
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            # seq orders the queue (first submitted, first started) and the listing.
            db.execute(f"CREATE TABLE IF NOT EXISTS jobs (seq INTEGER UNIQUE, {columns})")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            with db:  # commits, or rolls back on an exception
                yield db
        finally:
            db.close()

    def insert(self, job: Job) -> None:
        values = _to_row(dataclasses.asdict(job))
        names = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        with self._connect() as db:
            db.execute(f"INSERT INTO jobs (seq, {names}) VALUES "
                       f"((SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), {marks})", values)

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _from_row(row) if row else None

    def list(self, *statuses: str) -> list[Job]:
        """Jobs in submission order, only those with one of `statuses` when given."""
        query, args = "SELECT * FROM jobs", ()
        if statuses:
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            args = statuses
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY seq", args).fetchall()
        return [_from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many jobs have each of STATUSES (counted by SQLite: no row is read)."""
        with self._connect() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | {status: n for status, n in rows}

    def delete(self, job_id: str) -> bool:
        """Removes one job's row; False if there was none."""
        with self._connect() as db:
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def update(self, job_id: str, **fields: Any) -> Job:
        """Sets `fields` on one job and returns the updated row."""
        unknown = set(fields) - set(_FIELDS) | ({"id"} & set(fields))
        if unknown:
            raise ValueError(f"fields: cannot update {', '.join(sorted(unknown))}")
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"status: must be one of {', '.join(STATUSES)}, got {fields['status']!r}")
        values = _to_row(fields)
        with self._connect() as db:
            db.execute(f"UPDATE jobs SET {', '.join(f'{k} = :{k}' for k in values)} WHERE id = :id",
                       {**values, "id": job_id})
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

"""The job service under load: `python benchmarks/jobs_load.py [--submissions 200] [--table 1000]`.

Starts the real server (`jaxhum.jobs.__main__.main`, uvicorn, a bearer token) on a free
127.0.0.1 port over a fresh data directory with `--max-concurrent 2`; its jobs' program is a
trivial one (`JOB`: it notes its run directory in a shared file and exits 0), so every job ends
at once and nothing trains. Then:

1. `--submissions` POST /reinforcement-learning at once (one thread each, released together),
   each with its own seed; then waits (bounded) until no job is queued or running, and accounts
   for every submission: each accepted one is in the table exactly once (by id and by seed),
   none is missing, none is extra, and each has ended (`succeeded`, its process started exactly
   once) or is still queued (never started).
2. Plants ended jobs straight into the table up to `--table` rows, then times `--health-requests`
   GET /health over one keep-alive connection: median, p95 and max (target: median < 50 ms).
3. Stops the server with SIGTERM and times its exit.

Loopback only, bounded: every wait has a limit within `--time-limit` seconds. Appends one record
(date, machine, commit, figures) to `--out` (a JSON list; default benchmarks/results/jobs.json;
`--out -` writes nothing) and prints it.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime
import http.client
import json
import os
import pathlib
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "jobs.json"
MACHINE = "2-core CPU (CI-class)"
FINAL = ("succeeded", "failed", "cancelled", "resumable")
TINY = ["ppo.num_envs=4", "ppo.unroll_length=4", "ppo.num_minibatches=2", "ppo.num_updates_per_batch=1",
        "ppo.policy_hidden_sizes=8", "ppo.value_hidden_sizes=8", "ppo.num_eval_envs=2", "env.episode_length=20"]
# The jobs' program: `python -I -S -c JOB STARTS <the job's arguments>`; one line per start.
JOB = 'import sys; a = sys.argv[2:]; open(sys.argv[1], "a").write(a[a.index("--out") + 1] + "\\n")'
SERVE = """
import sys
from jaxhum.jobs import __main__ as jobs_main
job, starts, *argv = sys.argv[1:]
def program(task, args):
    return [sys.executable, "-I", "-S", "-c", job, starts, *args]
sys.exit(jobs_main.main(argv, program=program))
"""


# ----------------------------------------------------------------------------- HTTP


def request(port: int, method: str, path: str, body: Any = None, token: str | None = None,
            conn: http.client.HTTPConnection | None = None, timeout: float = 60) -> tuple[int, Any]:
    """(status, parsed JSON) of one request to 127.0.0.1:port (over `conn` if given)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
    finally:
        if own:
            conn.close()
    return resp.status, json.loads(payload) if payload else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe, deadline: float, interval: float = 0.2) -> Any:
    """probe() until it is truthy (returned), until time.monotonic() passes `deadline`."""
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


# ----------------------------------------------------------------------------- server


def start_server(data: pathlib.Path, starts: pathlib.Path, port: int, token: str, max_concurrent: int,
                 log: pathlib.Path) -> subprocess.Popen:
    env = {**os.environ, "JAXHUM_JOBS_TOKEN": token, "JAX_PLATFORMS": "cpu"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", SERVE, JOB, str(starts), "--port", str(port), "--data", str(data),
             "--max-concurrent", str(max_concurrent), "--stop-timeout", "10"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def healthy(port: int, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"the server exited with status {proc.returncode}")
    try:
        return request(port, "GET", "/health", timeout=5)[0] == 200
    except OSError:
        return False


# ----------------------------------------------------------------------------- the load


def submit_all(port: int, token: str, n: int, timeout: float) -> list[dict[str, Any]]:
    """n submissions at once (seed i each); one row per submission: seed, status, job_id, seconds."""
    barrier = threading.Barrier(n)

    def one(seed: int) -> dict[str, Any]:
        body = {"task": "humanoid_run", "policy_type": "PPO", "num_iterations": 1, "preset": "cpu", "seed": seed,
                "overrides": TINY}
        barrier.wait(timeout=timeout)
        began = time.monotonic()
        try:
            status, reply = request(port, "POST", "/reinforcement-learning", body, token, timeout=timeout)
        except OSError as err:
            status, reply = 0, {"detail": str(err)}
        return {"seed": seed, "status": status, "job_id": (reply or {}).get("job_id"),
                "seconds": time.monotonic() - began}

    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def account(submitted: list[dict[str, Any]], table: list[dict[str, Any]], starts: list[str]) -> dict[str, Any]:
    """Whether every submission is accounted for exactly once.

    Args:
      submitted: `submit_all`'s rows. table: GET /jobs. starts: the run directories the jobs'
        processes noted, one per start.
    Returns: counts, and `ok`: every accepted submission is one row with its seed, no row is
      extra, each row has ended (its process started once) or is queued (never started).
    """
    accepted = [s for s in submitted if s["status"] == 201]
    ids = [s["job_id"] for s in accepted]
    by_id = collections.Counter(j["job_id"] for j in table)
    started = collections.Counter(pathlib.Path(p).name for p in starts)
    seeds = {j["job_id"]: j["seed"] for j in table}
    statuses = collections.Counter(j["status"] for j in table)
    wrong_seed = sum(seeds.get(s["job_id"]) != s["seed"] for s in accepted)
    bad_starts = sum(started[j["job_id"]] != (1 if j["status"] in FINAL else 0)
                     for j in table if j["status"] in FINAL or j["status"] == "queued")
    figures = {
        "submitted": len(submitted), "accepted": len(accepted),
        "refused": collections.Counter(str(s["status"]) for s in submitted if s["status"] != 201),
        "rows": len(table), "duplicate_rows": sum(n - 1 for n in by_id.values() if n > 1),
        "duplicate_ids": len(ids) - len(set(ids)), "lost": len(set(ids) - set(by_id)),
        "extra": len(set(by_id) - set(ids)), "wrong_seed": wrong_seed, "statuses": dict(statuses),
        "process_starts": sum(started.values()), "jobs_not_started_exactly_once": bad_starts,
        "still_active": sum(statuses[s] for s in ("starting", "running")),
    }
    figures["refused"] = dict(figures["refused"])
    figures["ok"] = (figures["accepted"] == figures["submitted"] and figures["rows"] == figures["accepted"]
                     and not any(figures[k] for k in ("duplicate_rows", "duplicate_ids", "lost", "extra",
                                                      "wrong_seed", "jobs_not_started_exactly_once", "still_active"))
                     and set(statuses) <= {*FINAL, "queued"})
    return figures


def plant(data: pathlib.Path, n: int) -> None:
    """n ended jobs straight into the table (as many rows as a long-lived server keeps)."""
    sys.path.insert(0, str(REPO))
    from jaxhum.jobs.store import Job, Store, utc_now

    store = Store(data)
    for _ in range(n):
        job_id = uuid.uuid4().hex
        store.insert(Job(id=job_id, task="humanoid_run", policy_type="PPO", status="succeeded",
                         argv=("--preset", "cpu", *TINY, "--num-timesteps", "16"), num_timesteps=16,
                         run_dir=str(data / "runs" / job_id), log_path=str(data / "logs" / f"{job_id}.log"),
                         created_at=utc_now(), step=16, exit_code=0))


def time_health(port: int, n: int) -> dict[str, float]:
    """Median, p95 and max milliseconds of n GET /health over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    took = []
    try:
        for _ in range(n):
            began = time.perf_counter()
            status, _ = request(port, "GET", "/health", conn=conn)
            took.append((time.perf_counter() - began) * 1000)
            assert status == 200, status
    finally:
        conn.close()
    took.sort()
    return {"median_ms": round(statistics.median(took), 2), "p95_ms": round(took[int(0.95 * (n - 1))], 2),
            "max_ms": round(took[-1], 2), "requests": n}


def milliseconds(values: list[float]) -> dict[str, float]:
    values = sorted(v * 1000 for v in values)
    return {"median_ms": round(statistics.median(values), 1), "p95_ms": round(values[int(0.95 * (len(values) - 1))], 1),
            "max_ms": round(values[-1], 1)}


def run(submissions: int = 200, table: int = 1000, max_concurrent: int = 2, health_requests: int = 200,
        time_limit: float = 300.0) -> dict[str, Any]:
    """The whole benchmark (see the module doc); returns its figures."""
    deadline = time.monotonic() + time_limit
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="jobs_load_") as tmp:
        data, starts, port = pathlib.Path(tmp) / "data", pathlib.Path(tmp) / "starts.txt", free_port()
        proc = start_server(data, starts, port, token, max_concurrent, pathlib.Path(tmp) / "server.log")
        try:
            began = time.monotonic()
            wait_for("the server to answer /health", lambda: healthy(port, proc), deadline)
            startup_s = time.monotonic() - began

            began = time.monotonic()
            submitted = submit_all(port, token, submissions, timeout=max(1.0, deadline - time.monotonic()))
            submit_s = time.monotonic() - began
            idle = lambda: not any(request(port, "GET", "/health")[1]["jobs"][s]  # noqa: E731
                                   for s in ("queued", "starting", "running"))
            drained = True
            try:
                wait_for("every job to end", idle, deadline)
            except TimeoutError:
                drained = False  # queued jobs are still accounted for: they never started
            drain_s = time.monotonic() - began
            listed = request(port, "GET", "/jobs", token=token)[1]
            lines = starts.read_text().splitlines() if starts.exists() else []
            load = account(submitted, listed, lines)

            plant(data, max(0, table - len(listed)))
            rows = sum(request(port, "GET", "/health")[1]["jobs"].values())
            health = {"rows": rows, **time_health(port, health_requests)}
        finally:
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            stop_s = time.monotonic() - began
    return {
        "max_concurrent": max_concurrent, "server_startup_s": round(startup_s, 2),
        "submissions": {**load, "all_answered_s": round(submit_s, 2), "latency": milliseconds(
            [s["seconds"] for s in submitted]), "drained": drained, "all_ended_s": round(drain_s, 2)},
        "health": {**health, "target_median_ms": 50, "met": health["median_ms"] < 50},
        "stop": {"exit_status": code, "seconds": round(stop_s, 2)},
    }


def record(figures: dict[str, Any]) -> dict[str, Any]:
    """The JSON record of one run: date, machine, commit (and whether jaxhum/jobs had uncommitted
    changes), figures."""
    git = lambda *args: subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()  # noqa: E731
    return {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "machine": MACHINE,
            "commit": git("rev-parse", "HEAD") or None,
            "uncommitted_service_changes": bool(git("status", "--porcelain", "--", "jaxhum/jobs")),
            "figures": figures}


def append(path: pathlib.Path, entry: dict[str, Any]) -> None:
    """Appends `entry` to the JSON list in `path` (created if missing)."""
    runs = json.loads(path.read_text()) if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([*runs, entry], indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=200, help="concurrent submissions (default 200)")
    parser.add_argument("--table", type=int, default=1000, help="jobs in the table for /health (default 1000)")
    parser.add_argument("--max-concurrent", type=int, default=2, help="the server's --max-concurrent (default 2)")
    parser.add_argument("--health-requests", type=int, default=200, help="GET /health timed (default 200)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds for everything (default 300)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON list to append to ('-': none)")
    args = parser.parse_args(argv)
    entry = record(run(args.submissions, args.table, args.max_concurrent, args.health_requests, args.time_limit))
    if args.out != "-":
        append(pathlib.Path(args.out), entry)
    print(json.dumps(entry, indent=1))
    return 0 if entry["figures"]["submissions"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The training-job service under faults: a stop with clients that hold on, and a server killed
between spawning a job's process and recording it.

The servers here are the real command line (`jaxhum.jobs.__main__.main`, uvicorn, its signal
handling) in a subprocess on a free 127.0.0.1 port; only the jobs' program is a stand-in
(`STUB`, given as `main(program=...)`), so nothing trains. The real jobs' checkpoint on SIGTERM
with a follower open is tested in test_jobs.py (`test_resume_and_a_server_restart_lose_no_job`).
"""

from __future__ import annotations

import http.client
import os
import pathlib
import signal
import socket
import sys
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from test_jobs import TINY, Follower, Server, wait_for  # tests/ is on sys.path

from jaxhum.jobs.manager import MARKER_ENV, find_marked, process_start_time
from jaxhum.jobs.store import Store

STOP_TIMEOUT_S = 8
# The stand-in for `python -m experiments.<task>`. Its seed picks what it does: 0 exits 143 on
# SIGTERM (as a run does after its checkpoint), 1 ignores SIGTERM (so the stop must kill it),
# 2 runs until its run directory holds `release` and then succeeds, 3 exits at once. Each start
# and each SIGTERM is a line in its run directory.
STUB = '''
import os, pathlib, signal, sys, time
args = sys.argv[1:]
out = pathlib.Path(args[args.index("--out") + 1])
seed = int(args[args.index("--seed") + 1])
out.mkdir(parents=True, exist_ok=True)
with open(out / "starts.txt", "a") as f:
    f.write(f"{os.getpid()}\\n")

def on_term(signum, frame):
    with open(out / "signals.txt", "a") as f:
        f.write(f"TERM {os.getpid()}\\n")
    if seed != 1:
        print("stopped by SIGTERM", flush=True)
        sys.exit(143)

signal.signal(signal.SIGTERM, on_term)
print("stand-in started", flush=True)
deadline = time.monotonic() + 300
while seed != 3 and time.monotonic() < deadline and not (out / "release").exists():
    time.sleep(0.05)
if seed == 2:
    (out / "eval_summary.json").write_text("{}")
print("stand-in done", flush=True)
'''
# `python -m jaxhum.jobs` with the stand-in as the jobs' program; "kill-after-spawn" SIGKILLs the
# server right after it spawns a job's process, before it records the job running.
SERVE = '''
import os, signal, sys
from jaxhum.jobs import __main__ as jobs_main
stub, fault, *argv = sys.argv[1:]
def program(task, args):
    return [sys.executable, stub, *args]
def kill_server(job, pid):
    os.kill(os.getpid(), signal.SIGKILL)
after_spawn = kill_server if fault == "kill-after-spawn" else None
sys.exit(jobs_main.main(argv, program=program, after_spawn=after_spawn))
'''


def stub_server(tmp_path: pathlib.Path, env: dict[str, str], *args: str, fault: str = "none") -> Server:
    stub = tmp_path / "stub.py"
    if not stub.exists():
        stub.write_text(STUB)
    return Server(tmp_path / "data", env, args=args, command=(sys.executable, "-c", SERVE, str(stub), fault))


def body(seed: int) -> dict:
    return {"task": "humanoid_run", "policy_type": "PPO", "num_iterations": 2, "preset": "cpu", "seed": seed,
            "overrides": TINY}


def lines(path: pathlib.Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def raw_client(port: int, request: bytes) -> socket.socket:
    """A client that sends `request` (perhaps nothing, or half a request) and never reads."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request)
    return sock


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_stop_signals_the_jobs_ends_followers_and_exits_within_the_stop_timeout(tmp_path, subprocess_env):
    server = stub_server(tmp_path, subprocess_env, "--max-concurrent", "2", "--stop-timeout", str(STOP_TIMEOUT_S))
    server.start()
    try:
        polite, stubborn = (server.submit(32, seed=seed)["job_id"] for seed in (0, 1))
        for job_id in (polite, stubborn):
            server.wait_status(job_id, "running")
            wait_for("the stand-in to start", lambda j=job_id: lines(server.data / "runs" / j / "starts.txt"))
        followers = [Follower(server, polite), Follower(server, stubborn)]
        wait_for("both followers' first bytes", lambda: all(f.data for f in followers), timeout=60)
        # Clients that never read, never finish their request, or never send one.
        holders = [raw_client(server.port, f"GET /logs/{polite}.log?follow=true HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
                   raw_client(server.port, b"POST /reinforcement-learning HTTP/1.1\r\nHost: x\r\nContent-Le"),
                   raw_client(server.port, b"")]

        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        # It stops accepting at once: refused while it still waits for the stubborn job.
        wait_for("the server to refuse connections", lambda: refuses_connections(server.port), timeout=5,
                 interval=0.05)
        assert server.proc.poll() is None
        # ... and signals its jobs at once, not after its clients have gone.
        for job_id in (polite, stubborn):
            wait_for("the job's SIGTERM", lambda j=job_id: lines(server.data / "runs" / j / "signals.txt"),
                     timeout=5, interval=0.05)
        for follower in followers:
            follower.join(timeout=5)
            assert follower.ended and follower.error is None, follower.error
        code = server.proc.wait(timeout=STOP_TIMEOUT_S + 30)
        took = time.monotonic() - sent
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
        server.output.close()
    assert code in (0, -signal.SIGTERM), code
    assert took < STOP_TIMEOUT_S + 10, took  # the kill and the exit take a moment on a busy machine
    for sock in holders:
        sock.close()

    store = Store(server.data)
    for job_id in (polite, stubborn):  # one SIGTERM each (a second one would abort a run's checkpoint)
        run_dir = server.data / "runs" / job_id
        assert lines(run_dir / "signals.txt") == [f"TERM {pid}" for pid in lines(run_dir / "starts.txt")]
    job = store.get(polite)
    assert (job.status, job.exit_code) == ("failed", 143), job  # a stand-in saves no checkpoint
    job = store.get(stubborn)
    assert (job.status, job.exit_code) == ("failed", -signal.SIGKILL), job  # killed at the deadline
    assert job.error == "stopped by a signal (exit status -9) before the first checkpoint", job
    pid = int(lines(server.data / "runs" / stubborn / "starts.txt")[0])
    assert process_start_time(pid) == ""


def submit_to_a_dying_server(server: Server, seed: int) -> None:
    """Submits a job to a server that SIGKILLs itself once it has spawned the job's process."""
    server.start()
    try:
        with pytest.raises((OSError, http.client.HTTPException)):  # the reply never comes
            server("POST", "/reinforcement-learning", body(seed))
        assert server.proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        server.output.close()


def test_a_server_killed_right_after_spawning_a_job_never_runs_it_twice(tmp_path, subprocess_env):
    data = tmp_path / "data"
    dying = stub_server(tmp_path, subprocess_env, "--max-concurrent", "2", fault="kill-after-spawn")
    # X (seed 2) outlives the server; the next dying server adopts it, then spawns Y (seed 3),
    # which exits at once, and dies too, leaving Y recorded as starting with no process.
    submit_to_a_dying_server(dying, seed=2)
    store = Store(data)
    (x,) = store.list()
    assert (x.status, x.pid) == ("starting", None), x
    wait_for("X's process", lambda: lines(data / "runs" / x.id / "starts.txt"))
    x_pid = int(lines(data / "runs" / x.id / "starts.txt")[0])
    assert find_marked(x.id) == (x_pid, process_start_time(x_pid)), MARKER_ENV
    submit_to_a_dying_server(dying, seed=3)
    assert store.get(x.id).status == "running" and store.get(x.id).pid == x_pid  # adopted by its marker
    y = next(j for j in store.list() if j.id != x.id)
    assert y.status == "starting", y
    wait_for("Y's process to start and end", lambda: lines(data / "runs" / y.id / "starts.txt") and
             find_marked(y.id) is None)

    server = stub_server(tmp_path, subprocess_env)
    server.start()
    try:
        y_view = server.job(y.id)
        assert y_view["status"] == "failed", y_view
        assert y_view["error"] == "the server stopped while starting it before the first checkpoint", y_view
        assert server.job(x.id)["status"] == "running"
        (data / "runs" / x.id / "release").touch()
        x_view = server.wait_status(x.id, "succeeded", "failed", "resumable")
        assert x_view["status"] == "succeeded", x_view
    finally:
        server.stop()
    # Each ran exactly once, and neither is started by a later server either.
    assert [len(lines(data / "runs" / j / "starts.txt")) for j in (x.id, y.id)] == [1, 1]
    assert os.path.exists(data / "logs" / f"{y.id}.log")

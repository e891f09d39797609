"""The training-job service over real HTTP: uvicorn in a subprocess on a free 127.0.0.1 port.

One server (restarted once, on the same data directory) and three jobs serve every test, in
file order: A runs a tiny humanoid_run to success; B is long, shows an ETA while running, is
cancelled, resumed, interrupted by a server restart and resumed to success; C waits in the
queue across the restart and is cancelled before its first checkpoint. Every wait is bounded.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from jaxhum.envs import REGISTRY as TASKS
from jaxhum.jobs.manager import Manager, process_start_time
from jaxhum.jobs.store import Job, Store, utc_now
from jaxhum.jobs.tasks import discover

TINY = [
    "ppo.num_envs=4", "ppo.unroll_length=4", "ppo.num_minibatches=2", "ppo.num_updates_per_batch=1",
    "ppo.policy_hidden_sizes=8", "ppo.value_hidden_sizes=8", "ppo.num_eval_envs=2",
    "env.episode_length=20", "log_every=16", "eval_every=0",
]
STEPS_PER_ITERATION = 16  # 4 envs x 4 steps
LONG = 1_000_000  # steps: far more than any test waits for
DEADLINE_S = 240  # the longest any single wait may take (a cold compile on a busy 2-core CI box)


# ----------------------------------------------------------------------------- HTTP and server


def call(base: str, method: str, path: str, body=None, raw: bytes | None = None, headers: dict | None = None):
    """(status, headers, parsed JSON or bytes) of one request to 127.0.0.1; errors are returned.

    `raw` may be an iterable of bytes: sent chunked, without a Content-Length.
    """
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    sent = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(base + path, data=data, method=method, headers={**sent, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, headers, payload = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, headers, payload = err.code, dict(err.headers), err.read()
    if headers.get("content-type", "").startswith("application/json"):
        payload = json.loads(payload)
    return status, headers, payload


def wait_for(what: str, probe, timeout: float = DEADLINE_S, interval: float = 0.5):
    """Calls probe() until it returns something truthy (returned), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m jaxhum.jobs` on a free port over one data directory (`args`: more flags;
    `token`: sent as `Authorization: Bearer` by `__call__`; `command`: what runs instead of
    `python -m jaxhum.jobs`, before the flags)."""

    def __init__(self, data: pathlib.Path, env: dict[str, str], args: tuple[str, ...] = (), token: str | None = None,
                 command: tuple[str, ...] = (sys.executable, "-m", "jaxhum.jobs")):
        self.data, self.env, self.args, self.token, self.command = data, env, args, token, command
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.output = open(self.data.parent / "server.out", "ab")
        self.proc = subprocess.Popen(
            [*self.command, "--port", str(self.port), "--data", str(self.data),
             "--stop-timeout", str(DEADLINE_S), *self.args],
            env=self.env, stdout=self.output, stderr=subprocess.STDOUT)

        def healthy():
            assert self.proc.poll() is None, f"server exited with {self.proc.returncode}"
            try:
                return call(self.base, "GET", "/health")[0] == 200
            except OSError:
                return False

        wait_for("the server to answer /health", healthy)

    def stop(self) -> int:
        """SIGTERM (stops the running jobs with a checkpoint), then the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=DEADLINE_S + 30)
        finally:
            self.output.close()

    def __call__(self, method: str, path: str, body=None, raw: bytes | None = None):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        return call(self.base, method, path, body, raw, headers)

    def job(self, job_id: str) -> dict:
        status, _, payload = self("GET", f"/jobs/{job_id}")
        assert status == 200, payload
        return payload

    def wait_status(self, job_id: str, *statuses: str) -> dict:
        return wait_for(f"job {job_id} to be {' or '.join(statuses)}",
                        lambda: (job := self.job(job_id))["status"] in statuses and job)

    def submit(self, num_timesteps: int, **extra) -> dict:
        body = {"task": "humanoid_run", "policy_type": "PPO", "num_timesteps": num_timesteps,
                "preset": "cpu", "overrides": TINY, **extra}
        status, _, payload = self("POST", "/reinforcement-learning", body)
        assert status == 201, payload
        return payload

    def follow_log(self, job_id: str) -> bytes:
        """The whole log, read by byte offset until the job has ended and nothing more comes."""
        log, offset = b"", 0

        def more():
            nonlocal log, offset
            status, headers, chunk = self("GET", f"/logs/{job_id}.log?offset={offset}")
            assert status == 200, chunk
            assert int(headers["x-log-offset"]) == offset + len(chunk)
            log, offset = log + chunk, offset + len(chunk)
            return not chunk and headers["x-job-status"] not in ("queued", "running")

        wait_for(f"the log of job {job_id} to end", more)
        return log


class Follower(threading.Thread):
    """`GET /logs/{job_id}.log?follow=true` read to its end in a thread (`data`: the bytes so
    far; `ended`: the stream ended cleanly; `error`: what broke it instead)."""

    def __init__(self, server: Server, job_id: str):
        super().__init__(daemon=True)
        self.server, self.job_id = server, job_id
        self.data, self.ended, self.error = b"", False, None
        self.start()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=DEADLINE_S)
        headers = {"Authorization": f"Bearer {self.server.token}"} if self.server.token else {}
        try:
            conn.request("GET", f"/logs/{self.job_id}.log?follow=true", headers=headers)
            resp = conn.getresponse()
            assert resp.status == 200, resp.status
            while chunk := resp.read1(65536):
                self.data += chunk
            self.ended = True
        except Exception as err:  # reported by the test
            self.error = err
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, subprocess_env):
    srv = Server(tmp_path_factory.mktemp("jobs") / "data", subprocess_env)
    srv.start()
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


@pytest.fixture(scope="module")
def jobs(server):
    """Job ids shared by the tests below, in file order."""
    return {}


def runs(server) -> set[str]:
    return {p.name for p in (server.data / "runs").iterdir()}


# ----------------------------------------------------------------------------- bad input


def test_bad_requests_are_refused_before_any_process_starts(server):
    ok = {"task": "humanoid_run", "policy_type": "PPO", "num_iterations": 2, "preset": "cpu", "overrides": TINY}
    post = lambda body=None, raw=None: server("POST", "/reinforcement-learning", body, raw)  # noqa: E731

    # Malformed JSON and wrong types: 422 from the schema.
    assert post(raw=b'{"task": "humanoid_run",')[0] == 422
    for bad in ({"num_iterations": "ten"}, {"num_iterations": 0}, {"num_iterations": 2.5}, {"seed": -1},
                {"overrides": 5}, {"task": 3}, {"num_timesteps": 100}, {"num_iterations": None},
                {"iterations": 2}):
        status, _, payload = post({**ok, **bad})
        assert status == 422, (bad, payload)

    # Unknown task / policy type: 400 listing the known ones.
    status, _, payload = post({**ok, "task": "humanoid_cartwheel"})
    known = ", ".join(sorted(discover()))  # humanoid_backflip among them (issue 33)
    assert (status, payload["detail"]) == (400, f"task: must be one of {known}, got 'humanoid_cartwheel'")
    status, _, payload = post({**ok, "policy_type": "A2C"})
    assert (status, payload["detail"]) == (400, "policy_type: must be one of PPO, SAC, TD3, got 'A2C'")
    status, _, payload = post({**ok, "preset": "tpu"})
    assert (status, payload["detail"]) == (400, "preset: must be one of cpu, gpu, got 'tpu'")

    # Overrides the runner refuses come back with its one-line message.
    refused = {
        ("ppo.num_minibatches=3",): "ppo.num_minibatches: must divide num_envs * unroll_length = 16, got 3",
        ("ppo.bogus=1",): "ppo.bogus: unknown field",
        ("env.episode_length=-5",): "env.episode_length",
        ("ppo.learning_rate=fast",): "ppo.learning_rate: expected a float",
    }
    for items, message in refused.items():
        status, _, payload = post({**ok, "overrides": [*TINY, *items]})
        assert status == 400 and payload["detail"].startswith(message), (items, payload)
        assert "\n" not in payload["detail"]
    status, _, payload = post({**ok, "overrides": {"ppo.num_envs": 4, "ppo.num_minibatches": 3}})
    assert status == 400 and payload["detail"].startswith("ppo.num_minibatches: must divide"), payload
    # ... and so do flags smuggled in as overrides, and the fields the service sets itself.
    for item, field in (("--resume=/etc", "overrides"), ("out_dir=/tmp/elsewhere", "out_dir"),
                        ("num_timesteps=5", "num_timesteps"), ("../x=1", "overrides"),
                        ("compile_cache=/tmp/c", "compile_cache")):
        status, _, payload = post({**ok, "overrides": [item]})
        assert status == 400 and payload["detail"].startswith(f"{field}: "), (item, payload)

    # Unknown ids and log names: 404, never a file outside the data directory.
    unknown = uuid.uuid4().hex
    for method, path in (("GET", f"/jobs/{unknown}"), ("POST", f"/jobs/{unknown}/cancel"),
                         ("POST", f"/jobs/{unknown}/resume"), ("GET", f"/logs/{unknown}.log"),
                         ("GET", "/jobs/not-a-job"), ("GET", "/logs/..%2Fjobs.sqlite3"),
                         ("GET", "/logs/..%2F..%2F..%2Fetc%2Fpasswd"), ("GET", "/logs/%2Fetc%2Fpasswd"),
                         ("GET", "/logs//etc/passwd"), ("GET", "/logs/../jobs.sqlite3"),
                         ("GET", "/logs/jobs.sqlite3"), ("GET", "/jobs/..%2F..%2Fetc%2Fpasswd"),
                         ("GET", "/logs/%2E%2E%2Fserver.lock")):
        status, _, payload = server(method, path)
        assert status == 404, (path, payload)
        assert b"root:" not in json.dumps(payload).encode() and b"SQLite" not in json.dumps(payload).encode()

    status, _, payload = server("GET", "/jobs")
    assert (status, payload) == (200, [])
    assert runs(server) == set()


def test_out_of_range_and_oversized_input_is_refused_not_a_500(server):
    """The default limits; integers past SQLite's 64 bits once overflowed the job table (a 500)."""
    ok = {"task": "humanoid_run", "policy_type": "PPO", "num_iterations": 2, "preset": "cpu", "overrides": TINY}
    post = lambda body=None, raw=None: server("POST", "/reinforcement-learning", body, raw)  # noqa: E731
    length = {k: v for k, v in ok.items() if k != "num_iterations"}

    # The request's own integers: 422 naming the field (seeds past 2**32 - 1 would alias smaller ones).
    for body, field in (({**ok, "seed": 2**70}, "seed"), ({**ok, "seed": 2**32}, "seed"),
                        ({**length, "num_timesteps": 2**70}, "num_timesteps"),
                        ({**length, "num_iterations": 2**64}, "num_iterations")):
        status, _, payload = post(body)
        assert status == 422 and [e["loc"] for e in payload["detail"]] == [["body", field]], (body, payload)
    status, _, payload = post(raw=b'{"task": "humanoid_run", "seed": 1' + b"0" * 5000 + b"}")  # past int() text
    assert (status, payload) == (400, {"detail": "There was an error parsing the body"})

    # Integers in overrides, either form, list items too: 400 naming the override.
    for overrides, field in (({"ppo.num_envs": 2**70}, "ppo.num_envs"), ([*TINY, f"log_every={2**70}"], "log_every"),
                             ([*TINY, f"ppo.policy_hidden_sizes=8,{-2**63 - 1}"], "ppo.policy_hidden_sizes"),
                             ([*TINY, "seed_like=" + "9" * 5000], "seed_like")):
        status, _, payload = post({**ok, "overrides": overrides})
        assert status == 400 and payload["detail"].startswith(f"{field}: integers must be in "), payload
        assert len(payload["detail"]) < 200, payload

    # The operator's limits (defaults: --max-envs 65536, --max-seeds 16, --max-timesteps 10**10).
    for body, message in (
        ({**ok, "overrides": [*TINY, "ppo.num_envs=131072"]},
         "ppo.num_envs: must be at most 65536 on this server (--max-envs), got 131072"),
        ({**ok, "overrides": [*TINY, "num_seeds=17"]}, "num_seeds: must be at most 16 on this server (--max-seeds)"),
        ({**length, "num_timesteps": 10**10 + 1},
         "num_timesteps: a run may train at most 10000000000 env steps on this server (--max-timesteps)"),
        ({**length, "num_iterations": 10**9}, "num_iterations: a run may train at most 10000000000 env steps"),
        ({**ok, "seed": 2**32 - 1, "overrides": [*TINY, "num_seeds=2"]},
         "num_seeds: must be at most 1 with seed 4294967295"),
    ):
        status, _, payload = post(body)
        assert status == 400 and payload["detail"].startswith(message), (body, payload)
    status, _, payload = post({**ok, "overrides": [f"log_every={16 * (i + 1)}" for i in range(257)]})
    assert (status, payload["detail"]) == (
        413, "overrides: must be at most 256 items on this server (--max-overrides), got 257"), payload

    # A body over --max-body-bytes (default 64 KiB): 413 by its Content-Length, or once the
    # bytes received pass the limit (chunked).
    big = json.dumps({**ok, "overrides": [*TINY, "x=" + "y" * 200_000]}).encode()
    status, _, payload = post(raw=big)
    assert (status, payload["detail"]) == (
        413, f"body: must be at most 65536 bytes on this server (--max-body-bytes), got Content-Length {len(big)}")
    status, _, payload = post(raw=(big[i:i + 8192] for i in range(0, len(big), 8192)))
    assert status == 413 and payload["detail"].endswith("(--max-body-bytes), got more than 65536 bytes"), payload

    # Errors quote at most a short excerpt of the input (FastAPI's own 422 echoes it whole).
    long = "z" * 50_000
    for body, status_code in (({**ok, "num_iterations": long}, 422), ({**ok, "num_timesteps": 3, "x": long}, 422),
                              ({**ok, long: 1}, 422), ({**ok, "task": long}, 400), ({**ok, "preset": long}, 400),
                              ({**ok, "overrides": [f"ppo.learning_rate={long}"]}, 400),
                              ({**ok, "overrides": [f"{long}=1"]}, 400), ({**ok, "overrides": [long]}, 400)):
        status, _, payload = post(body)
        assert status == status_code and len(json.dumps(payload)) < 2000, (status, json.dumps(payload)[:500])
    assert server("GET", f"/logs/{uuid.uuid4().hex}.log?offset={2**70}")[0] == 422
    assert runs(server) == set() and server("GET", "/jobs")[2] == []


def test_bad_command_lines_are_one_line_errors(server):
    for argv, message in (
        (["--max-concurrent", "0"], "error: --max-concurrent: must be an integer in [1, 1024], got '0'"),
        (["--port", str(server.port), "--data", str(server.data)],
         f"error: --data: {server.data} is served by another running server"),
    ):
        out = subprocess.run([sys.executable, "-m", "jaxhum.jobs", *argv], env=server.env,
                             capture_output=True, text=True, timeout=120)
        assert (out.returncode, out.stderr.strip(), out.stdout) == (2, message, ""), out


def test_schema_lists_every_override_with_its_type_and_default(server):
    status, _, schema = server("GET", "/schema")
    assert status == 200 and schema["$schema"].endswith("2020-12/schema")
    props = schema["properties"]
    num_envs = props["ppo"]["properties"]["num_envs"]
    assert (num_envs["type"], num_envs["default"]) == ("integer", 2048) and "environments" in num_envs["description"]
    assert (props["num_timesteps"]["type"], props["num_timesteps"]["default"]) == ("integer", 50_000_000)
    assert props["num_timesteps"]["readOnly"] and props["out_dir"]["readOnly"] and "readOnly" not in props["log_every"]
    assert props["stop_at_eval_return"]["default"] is None and {"type": "null"} in props["stop_at_eval_return"]["anyOf"]
    assert props["ppo"]["properties"]["curriculum"]["properties"]["step"]["default"] == 0.05
    # env.*: each task's own fields, applied by env_name.
    assert props["env_name"]["enum"] == sorted(TASKS)
    vx = schema["$defs"]["joystick"]["properties"]["vx_range"]
    assert (vx["type"], vx["default"], vx["prefixItems"]) == ("array", [-0.5, 1.0], [{"type": "number"}] * 2)
    assert "forward" in vx["description"] and schema["$defs"]["balance"]["properties"]["vx_range"]["default"] == [0, 0]
    friction = schema["$defs"]["walk"]["properties"]["randomization"]["properties"]["friction"]
    assert friction["default"] is None and {"type": "null"} in friction["anyOf"]
    assert {"if": {"properties": {"env_name": {"const": "joystick"}}, "required": ["env_name"]},
            "then": {"properties": {"env": {"$ref": "#/$defs/joystick"}}}} in schema["allOf"]
    status, _, openapi = server("GET", "/openapi.json")
    assert status == 200 and "JSON Schema" in openapi["paths"]["/schema"]["get"]["description"]


# ----------------------------------------------------------------------------- jobs


def test_job_runs_to_success_and_the_next_waits_in_the_queue(server, jobs):
    a = server.submit(num_timesteps=20 * STEPS_PER_ITERATION)
    b = server.submit(num_timesteps=LONG, seed=1)
    jobs.update(a=a["job_id"], b=b["job_id"])
    assert a["status"] == "running" and b["status"] == "queued"  # --max-concurrent 1
    assert a["estimated_completion"] is None
    assert a["log_link"] == f"{server.base}/logs/{a['job_id']}.log"

    log = server.follow_log(a["job_id"]).decode()
    assert "step 320/320 (100.0%)" in log
    assert log.rstrip().endswith("succeeded")
    job = server.job(a["job_id"])
    assert job["status"] == "succeeded" and job["exit_code"] == 0 and job["step"] == 320
    assert job["estimated_completion"] is None
    assert (pathlib.Path(job["run_dir"]) / "eval_summary.json").exists()
    assert pathlib.Path(job["run_dir"]).parent == server.data / "runs"

    # ?follow=true streams the same bytes (the job has ended, so the stream ends).
    status, _, streamed = server("GET", f"/logs/{a['job_id']}.log?follow=true")
    assert status == 200 and streamed.decode() == log
    status, _, payload = server("GET", f"/logs/{a['job_id']}.log?offset={len(log) + 1}")
    assert status == 416, payload
    assert server("GET", f"/logs/{a['job_id']}.log?offset=-1")[0] == 422
    status, _, payload = server("POST", f"/jobs/{a['job_id']}/resume")
    assert status == 409 and payload["detail"].startswith("status: the job is succeeded"), payload


def test_running_job_has_an_eta_and_cancel_checkpoints_it(server, jobs):
    b = server.wait_status(jobs["b"], "running")
    b = wait_for("job B's first log point", lambda: (j := server.job(jobs["b"]))["step"] > 0 and j)
    eta = datetime.datetime.fromisoformat(b["estimated_completion"])
    assert eta > datetime.datetime.fromisoformat(b["started_at"])
    assert b["steps_per_second"] > 0 and b["num_timesteps"] == LONG

    status, _, payload = server("POST", f"/jobs/{jobs['b']}/cancel")
    assert status == 200 and payload["cancel_requested"], payload
    status, _, payload = server("POST", f"/jobs/{jobs['b']}/cancel")  # not a second SIGTERM (that aborts)
    assert status == 200 or (status == 409 and "cancelled" in payload["detail"]), payload
    b = server.wait_status(jobs["b"], "cancelled", "succeeded", "failed")
    assert b["status"] == "cancelled" and b["exit_code"] == 143, b
    assert b["estimated_completion"] is None
    log = server.follow_log(jobs["b"]).decode()
    assert "stopped by SIGTERM at step" in log and log.rstrip().endswith("cancelled")
    assert any((pathlib.Path(b["run_dir"]) / "checkpoints").iterdir())
    status, _, payload = server("POST", f"/jobs/{jobs['b']}/cancel")
    assert status == 409, payload


def test_resume_and_a_server_restart_lose_no_job(server, jobs):
    status, _, payload = server("POST", f"/jobs/{jobs['b']}/resume", {"num_timesteps": LONG, "num_iterations": 2})
    assert status == 422, payload
    status, _, payload = server("POST", f"/jobs/{jobs['b']}/resume", {"num_timesteps": LONG})
    assert status == 200 and payload["status"] == "running" and payload["error"] == "", payload
    cancelled_at = server.job(jobs["b"])["step"]
    c = server.submit(num_timesteps=LONG, seed=2)
    jobs["c"] = c["job_id"]
    assert c["status"] == "queued"
    wait_for("job B to log past its checkpoint",
             lambda: (j := server.job(jobs["b"]))["step"] > cancelled_at and j["estimated_completion"])
    log_before = (server.data / "logs" / f"{jobs['b']}.log").read_bytes()

    # SIGTERM with a follower open: B saves a checkpoint and stops with the server (uvicorn
    # re-raises the signal), and the follower's stream ends (it once held the server up for good).
    follower = Follower(server, jobs["b"])
    wait_for("the follower's first bytes", lambda: follower.data, timeout=60)
    assert server.stop() in (0, -signal.SIGTERM)
    follower.join(timeout=30)
    assert follower.ended and follower.error is None, follower.error
    server.start()
    status, _, listed = server("GET", "/jobs")
    assert [j["job_id"] for j in listed] == [jobs["a"], jobs["b"], jobs["c"]]
    b = server.job(jobs["b"])
    assert b["status"] == "resumable" and b["exit_code"] == 143 and "resume" in b["error"], b
    assert server.job(jobs["a"])["status"] == "succeeded"
    assert (server.data / "logs" / f"{jobs['b']}.log").read_bytes().startswith(log_before)

    # The queued job started again with the new server; cancelled before any checkpoint.
    server.wait_status(jobs["c"], "running")
    status, _, payload = server("POST", f"/jobs/{jobs['c']}/cancel")
    assert status == 200, payload
    c = server.wait_status(jobs["c"], "cancelled", "failed", "succeeded")
    assert c["status"] == "cancelled" and c["error"] == "cancelled before the first checkpoint", c
    status, _, payload = server("POST", f"/jobs/{jobs['c']}/resume")
    assert status == 409 and "no checkpoint" in payload["detail"], payload

    # B continues from its checkpoint, to a new (short) length, and succeeds; not to one it has reached.
    stopped_at = b["step"]
    status, _, payload = server("POST", f"/jobs/{jobs['b']}/resume", {"num_timesteps": stopped_at})
    assert status == 409 and payload["detail"].startswith("num_timesteps: the job has reached step "), payload
    assert int(payload["detail"].split("step ")[1].split(";")[0]) >= stopped_at, payload
    status, _, payload = server("POST", f"/jobs/{jobs['b']}/resume",
                                {"num_iterations": stopped_at // STEPS_PER_ITERATION + 3})
    assert status == 200 and payload["status"] == "running", payload
    log = server.follow_log(jobs["b"]).decode()
    assert log.count("resumed ") == 2 and log.rstrip().endswith("succeeded")
    b = server.job(jobs["b"])
    assert b["status"] == "succeeded" and b["exit_code"] == 0 and b["step"] == b["num_timesteps"] > stopped_at, b
    status, _, health = server("GET", "/health")
    assert health["jobs"] == {"queued": 0, "starting": 0, "running": 0, "succeeded": 2, "failed": 0, "cancelled": 1,
                              "resumable": 0}


# ----------------------------------------------------------------------------- recovery without HTTP


def test_restart_settles_jobs_whose_process_is_gone_and_adopts_live_ones(tmp_path):
    """A recorded pid counts only with its start time: a reused pid is not the job."""
    store = Store(tmp_path)
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        def running(pid: int, pid_start: str) -> str:
            job_id = uuid.uuid4().hex
            store.insert(Job(id=job_id, task="humanoid_run", policy_type="PPO", status="running", argv=(),
                             num_timesteps=32, run_dir=str(tmp_path / "runs" / job_id),
                             log_path=str(tmp_path / "logs" / f"{job_id}.log"), created_at=utc_now(),
                             pid=pid, pid_start=pid_start))
            return job_id

        reused = running(os.getpid(), "1")  # our pid, another start time: not the job
        saved = running(2**22 + 7, "5")  # no such process; it left a checkpoint
        (tmp_path / "runs" / saved / "checkpoints" / "32").mkdir(parents=True)
        alive = running(sleeper.pid, process_start_time(sleeper.pid))
        manager = Manager(store, tmp_path, tasks={}, poll_interval=0.05)
        manager.start()
        try:
            assert store.get(reused).status == "failed" and "before the first checkpoint" in store.get(reused).error
            assert store.get(saved).status == "resumable"
            assert store.get(alive).status == "running"  # adopted: still watched
            sleeper.terminate()
            sleeper.wait(timeout=10)
            job = wait_for("the adopted job to be settled", lambda: (j := store.get(alive)).status != "running" and j,
                           timeout=30, interval=0.05)
            assert job.status == "failed" and job.exit_code is None
            assert job.error == "process gone before the first checkpoint"
        finally:
            manager.stop()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()

"""The training-job service's limits and authentication: seeds the training honours, the
operator's `--max-*` flags, the bearer token and the flags that guard a non-loopback host.

One server (a token, low limits, one stopped job planted in its table) serves the HTTP tests; no
test trains: every request here is refused before any process starts.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import uuid

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from test_jobs import TINY, Server, call, free_port, runs  # tests/ is on sys.path

from experiments import humanoid_run
from jaxhum.config import ConfigError
from jaxhum.jobs import __main__ as jobs_main
from jaxhum.jobs import limits as limits_lib
from jaxhum.jobs.store import Job, Store, utc_now
from jaxhum.run import config as run_config
from jaxhum.run import main as run_main

TOKEN = "test-token-" + "k" * 24
LIMIT_FLAGS = ("--max-envs", "64", "--max-seeds", "2", "--max-timesteps", "100000", "--max-overrides", "12",
               "--max-body-bytes", "4096")
REACHED = 320  # the planted job's step


# ----------------------------------------------------------------------------- seeds (no server)


def test_seeds_past_2_to_the_32_are_refused_as_they_alias_smaller_ones(tmp_path):
    import jax

    same = jax.random.key_data(jax.random.key(2**32)) == jax.random.key_data(jax.random.key(0))
    assert bool(same.all())  # why: seed 2**32 would silently train the run of seed 0
    cfg = humanoid_run.get_config("cpu")
    assert run_config.validate(dataclasses.replace(cfg, seed=2**32 - 1), build=False).seed == 2**32 - 1
    for seed in (2**32, 2**70, -1):
        with pytest.raises(ConfigError, match=rf"^seed: must be in \[0, 4294967295\], got {seed}$"):
            run_config.validate(dataclasses.replace(cfg, seed=seed), build=False)
    with pytest.raises(ConfigError, match=r"^num_seeds: must be at most 2 with seed 4294967294 \(the last seed"):
        run_config.validate(dataclasses.replace(cfg, seed=2**32 - 2, num_seeds=3), build=False)
    # The command line refuses it too (before building anything), and the service's bound is the same.
    with pytest.raises(ConfigError, match=r"^seed: must be in \[0, 4294967295\]"):
        run_main.prepare(humanoid_run.get_config, ["--seed", str(2**32), "--out", str(tmp_path / "run")],
                         "humanoid_run", humanoid_run.PRESETS)
    assert limits_lib.SEED_MAX == run_config.SEED_MAX


# ----------------------------------------------------------------------------- flags (no server)


def test_a_non_loopback_host_needs_a_token_or_insecure(tmp_path, subprocess_env, monkeypatch, capsys):
    data = tmp_path / "data"
    env = {k: v for k, v in subprocess_env.items() if k != jobs_main.TOKEN_ENV}
    out = subprocess.run([sys.executable, "-m", "jaxhum.jobs", "--host", "0.0.0.0", "--data", str(data)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout) == (2, ""), out
    assert out.stderr.strip() == (
        "error: --host: 0.0.0.0 is reachable from other machines; give a token (--token-file or JAXHUM_JOBS_TOKEN), "
        "or --insecure to serve it without authentication")
    assert not data.exists()  # checked before the data directory is created

    settings = jobs_main.settings
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert settings(["--host", "0.0.0.0", "--token-file", str(token_file)], environ={}).token == TOKEN
    from_env = settings(["--host", "0.0.0.0"], environ={jobs_main.TOKEN_ENV: TOKEN})
    assert (from_env.token, from_env.insecure) == (TOKEN, False)
    loopback = settings(["--host", "localhost", "--insecure"], environ={jobs_main.TOKEN_ENV: ""})
    assert (loopback.token, loopback.insecure) == (None, False)  # nothing to warn about
    insecure = settings(["--host", "0.0.0.0", "--insecure", "--max-envs", "8"], environ={})
    assert (insecure.token, insecure.insecure, insecure.limits.max_envs) == (None, True, 8)
    assert insecure.limits == dataclasses.replace(limits_lib.Limits(), max_envs=8)
    for argv, environ, message in (
        (["--token-file", str(tmp_path / "missing")], {}, f"--token-file: cannot read {tmp_path / 'missing'}"),
        ([], {jobs_main.TOKEN_ENV: "short"}, "JAXHUM_JOBS_TOKEN: the token must be at least 16 printable ASCII"),
        ([], {jobs_main.TOKEN_ENV: "a token with spaces"}, "JAXHUM_JOBS_TOKEN: the token must be"),
        (["--max-body-bytes", "1e9"], {}, "--max-body-bytes: must be an integer in [1024, 1073741824], got '1e9'"),
        (["--max-timesteps", str(10**16)], {}, "--max-timesteps: must be an integer in [1, 1000000000000000]"),
        (["--max-seeds", "0"], {}, "--max-seeds: must be an integer in [1, 65536], got '0'"),
    ):
        with pytest.raises(jobs_main._UsageError) as err:
            settings([*argv, "--data", str(data)], environ=environ)
        assert str(err.value).startswith(message) and "\n" not in str(err.value), err.value
        assert all(token not in str(err.value) for token in environ.values()), err.value  # never echoed
    assert not data.exists()

    # --insecure starts the server (here: up to `serve`, uvicorn's run) after one loud warning line.
    from jaxhum.jobs import app as app_lib

    started = {}
    monkeypatch.setattr(app_lib, "create_app", lambda *args, **kwargs: started.update(kwargs) or "app")
    monkeypatch.setattr(jobs_main, "serve", lambda app, config: started.update(app=app, host=config.host))
    monkeypatch.delenv(jobs_main.TOKEN_ENV, raising=False)
    port = free_port()
    assert jobs_main.main(["--host", "0.0.0.0", "--insecure", "--port", str(port), "--data", str(data)]) == 0
    assert started == {"app": "app", "host": "0.0.0.0", "limits": limits_lib.Limits(), "token": None}
    warning = capsys.readouterr().err.strip()
    assert warning.startswith(f"WARNING: --insecure: serving 0.0.0.0:{port} WITHOUT AUTHENTICATION") and \
        "\n" not in warning


# ----------------------------------------------------------------------------- over HTTP


@pytest.fixture(scope="module")
def server(tmp_path_factory, subprocess_env):
    """A server with a token and low limits; its table holds one cancelled job at step REACHED."""
    root = tmp_path_factory.mktemp("jobs_limits")
    data = root / "data"
    (root / "token").write_text(TOKEN)
    job_id = uuid.uuid4().hex
    run_dir = data / "runs" / job_id
    (run_dir / "checkpoints" / str(REACHED)).mkdir(parents=True)
    Store(data).insert(Job(id=job_id, task="humanoid_run", policy_type="PPO", status="cancelled", argv=(),
                           num_timesteps=100_000, run_dir=str(run_dir), log_path=str(data / "logs" / f"{job_id}.log"),
                           created_at=utc_now(), step=REACHED))
    env = {k: v for k, v in subprocess_env.items() if k != jobs_main.TOKEN_ENV}
    srv = Server(data, env, args=("--token-file", str(root / "token"), *LIMIT_FLAGS), token=TOKEN)
    srv.start()
    srv.planted = job_id
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


def test_every_route_but_health_needs_the_bearer_token(server):
    status, _, health = call(server.base, "GET", "/health")
    assert status == 200 and health["status"] == "ok"
    body = {"task": "humanoid_run", "policy_type": "PPO", "num_iterations": 2, "preset": "cpu", "overrides": TINY}
    for headers in (None, {"Authorization": "Bearer wrong-" + TOKEN[6:]}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}):
        for method, path, payload in (("GET", "/jobs", None), ("GET", f"/jobs/{server.planted}", None),
                                      ("POST", "/reinforcement-learning", body), ("GET", "/schema", None),
                                      ("GET", "/openapi.json", None), ("GET", "/docs", None),
                                      ("GET", f"/logs/{server.planted}.log", None),
                                      ("POST", f"/jobs/{server.planted}/resume", {"num_timesteps": 10})):
            status, got, reply = call(server.base, method, path, payload, headers=headers)
            assert (status, got.get("www-authenticate")) == (401, "Bearer"), (headers, path, reply)
            assert reply["detail"].startswith("authorization: "), reply
    # Authentication comes first: a body too large from a client without the token is never read.
    status, _, _ = call(server.base, "POST", "/reinforcement-learning", raw=b"x" * 10_000)
    assert status == 401
    status, _, listed = server("GET", "/jobs")
    assert status == 200 and [j["job_id"] for j in listed] == [server.planted]
    assert server("GET", "/openapi.json")[0] == 200


def test_the_operators_limits_are_one_line_refusals(server):
    ok = {"task": "humanoid_run", "policy_type": "PPO", "num_iterations": 2, "preset": "cpu", "overrides": TINY}
    length = {k: v for k, v in ok.items() if k != "num_iterations"}
    post = lambda body=None, raw=None: server("POST", "/reinforcement-learning", body, raw)  # noqa: E731
    for body, status_code, message in (
        ({**ok, "overrides": [*TINY, "ppo.num_envs=128"]}, 400,
         "ppo.num_envs: must be at most 64 on this server (--max-envs), got 128"),
        ({**ok, "overrides": [*TINY, "num_seeds=3"]}, 400,
         "num_seeds: must be at most 2 on this server (--max-seeds), got 3"),
        ({**length, "num_timesteps": 100_001}, 400,
         "num_timesteps: a run may train at most 100000 env steps on this server (--max-timesteps), got 100001"),
        ({**length, "num_iterations": 6251}, 400,  # 6251 iterations of 16 steps
         "num_iterations: a run may train at most 100000 env steps on this server (--max-timesteps), got 100016"),
        ({**ok, "overrides": [*TINY, "log_every=16", "eval_every=0", "log_every=32"]}, 413,
         "overrides: must be at most 12 items on this server (--max-overrides), got 13"),
        ({**ok, "overrides": [*TINY, "x=" + "y" * 4000]}, 413,
         "body: must be at most 4096 bytes on this server (--max-body-bytes), got Content-Length 4"),
    ):
        status, _, payload = post(body)
        assert status == status_code and payload["detail"].startswith(message), (body, payload)
    assert runs(server) == {server.planted}


def test_resume_must_train_past_the_step_the_job_reached(server):
    path = f"/jobs/{server.planted}/resume"
    for steps in (REACHED, REACHED - 100, 1):
        status, _, payload = server("POST", path, {"num_timesteps": steps})
        assert (status, payload["detail"]) == (409, f"num_timesteps: the job has reached step {REACHED}; "
                                                     f"a resume must train past it, got {steps} env steps")
    status, _, payload = server("POST", path, {"num_timesteps": 100_001})
    assert status == 400 and payload["detail"].startswith("num_timesteps: a run may train at most 100000"), payload
    status, _, payload = server("POST", path, {"num_timesteps": 2**70})
    assert status == 422 and payload["detail"][0]["loc"] == ["body", "num_timesteps"], payload
    assert server.job(server.planted)["status"] == "cancelled"  # still: nothing was queued


def test_a_busy_port_creates_no_data_directory(tmp_path, subprocess_env):
    """The port is checked before --data is created: a refused start writes nothing."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data = tmp_path / "data"
        out = subprocess.run([sys.executable, "-m", "jaxhum.jobs", "--port", str(port), "--data", str(data)],
                             env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith(f"error: --port: cannot listen on 127.0.0.1:{port}"), out
    assert out.stderr.count("\n") == 1 and not data.exists()


def test_delete_forgets_an_ended_job_and_removes_its_files_only_if_asked(tmp_path, subprocess_env):
    data = tmp_path / "data"
    outside = tmp_path / "outside.txt"
    outside.write_text("not the server's")
    planted = {}
    for name in ("keep_files", "remove_files"):
        job_id = uuid.uuid4().hex
        run_dir, log = data / "runs" / job_id, data / "logs" / f"{job_id}.log"
        (run_dir / "checkpoints" / "16").mkdir(parents=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("a log line\n")
        (run_dir / "link").symlink_to(outside)  # removed as a link; its target stays
        Store(data).insert(Job(id=job_id, task="humanoid_run", policy_type="PPO", status="succeeded", argv=(),
                               num_timesteps=16, run_dir=str(run_dir), log_path=str(log), created_at=utc_now()))
        planted[name] = (job_id, run_dir, log)
    server = Server(data, subprocess_env)
    server.start()
    try:
        job_id, run_dir, log = planted["keep_files"]
        assert server("DELETE", f"/jobs/{job_id}")[:3:2] == (200, {"job_id": job_id, "deleted": True,
                                                                   "files_removed": False})
        assert server("GET", f"/jobs/{job_id}")[0] == 404 and run_dir.is_dir() and log.is_file()
        assert server("DELETE", f"/jobs/{job_id}")[0] == 404  # once only
        job_id, run_dir, log = planted["remove_files"]
        status, _, reply = server("DELETE", f"/jobs/{job_id}?files=true")
        assert (status, reply["files_removed"]) == (200, True), reply
        assert not run_dir.exists() and not log.exists() and outside.read_text() == "not the server's"
        assert server("GET", "/jobs")[2] == []
    finally:
        server.stop()
    # A queued or running job is refused (409): cancel it first.
    from jaxhum.jobs.manager import Conflict, Manager

    queued = uuid.uuid4().hex
    store = Store(data)
    store.insert(Job(id=queued, task="humanoid_run", policy_type="PPO", status="queued", argv=(), num_timesteps=16,
                     run_dir=str(data / "runs" / queued), log_path=str(data / "logs" / f"{queued}.log"),
                     created_at=utc_now()))
    with pytest.raises(Conflict, match="status: the job is queued; cancel it first"):
        Manager(store, data, tasks={}).delete(queued, files=True)
    assert store.get(queued) is not None

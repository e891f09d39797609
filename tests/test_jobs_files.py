"""The files the training-job service opens: only inside its data directory, never through a
symbolic link (logs, run directories, checkpoints), and the paths a request may name
(`env.model_path`, `init_from`) only under the operator's `--allow-path` roots.

One server serves most tests: a planted running job (a `sleep` process it adopts) holds its one
slot, so an accepted job waits in the queue and nothing trains. A second server, started over
a data directory with planted links, shows that a job is never started through one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from test_jobs import TINY, Server, free_port, runs  # tests/ is on sys.path

from jaxhum.jobs import __main__ as jobs_main
from jaxhum.jobs.manager import Manager, process_start_time
from jaxhum.jobs.store import Job, Store, utc_now

SECRET = "root:x:0:0:SECRET-NOT-TO-BE-SERVED\n"
OK = {"task": "humanoid_run", "policy_type": "PPO", "num_iterations": 2, "preset": "cpu", "overrides": TINY}


def outside_line(field: str) -> str:
    return f"{field}: must be an absolute path under an allowed root (--allow-path)"


def plant(data, status: str, argv: tuple[str, ...] = (), **fields) -> str:
    """A job row in data's table (its run directory and log are the test's to make)."""
    job_id = uuid.uuid4().hex
    Store(data).insert(Job(id=job_id, task="humanoid_run", policy_type="PPO", status=status, argv=argv,
                           num_timesteps=100_000, run_dir=str(data / "runs" / job_id),
                           log_path=str(data / "logs" / f"{job_id}.log"), created_at=utc_now(), **fields))
    return job_id


def swapped(folder, target):
    """Renames `folder` aside and puts a link to `target` in its place; returns the undo."""
    aside = folder.with_name(folder.name + ".real")
    folder.rename(aside)
    folder.symlink_to(target, target_is_directory=True)

    def undo():
        folder.unlink()
        aside.rename(folder)

    return undo


@pytest.fixture(scope="module")
def server(tmp_path_factory, subprocess_env):
    """--allow-path ALLOWED only (so not the data directory); planted: a running job that holds
    the slot, a log that links outside, a run directory that links outside, a run whose
    checkpoint holds a link, a stopped job asking for a model outside the roots."""
    from jaxhum.envs.humanoid_run import brax_humanoid_xml

    root = tmp_path_factory.mktemp("jobs_files")
    data, allowed, outside = root / "data", root / "allowed", root / "outside"
    for folder in (data / "runs", data / "logs", allowed, outside):
        folder.mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET)
    shutil.copy(brax_humanoid_xml(), allowed / "humanoid.xml")
    (allowed / "escape.xml").symlink_to(outside / "secret.txt")  # inside the root, resolves outside
    (allowed / "src" / "checkpoints" / "16").mkdir(parents=True)  # no real checkpoint: the runner says so
    (allowed / "linked_src" / "checkpoints" / "16").mkdir(parents=True)
    (allowed / "linked_src" / "checkpoints" / "16" / "state").symlink_to(outside / "secret.txt")

    sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True)
    ids = {"holder": plant(data, "running", pid=sleeper.pid, pid_start=process_start_time(sleeper.pid))}
    (data / "logs" / f"{ids['holder']}.log").write_text("the holder's own log\n")
    ids["linked_log"] = plant(data, "succeeded")
    (data / "logs" / f"{ids['linked_log']}.log").symlink_to(outside / "secret.txt")
    ids["linked_run"] = plant(data, "cancelled")
    (outside / "run" / "checkpoints" / "16").mkdir(parents=True)
    (data / "runs" / ids["linked_run"]).symlink_to(outside / "run", target_is_directory=True)
    ids["link_in_checkpoint"] = plant(data, "cancelled")
    (data / "runs" / ids["link_in_checkpoint"] / "checkpoints" / "16").mkdir(parents=True)
    (data / "runs" / ids["link_in_checkpoint"] / "checkpoints" / "16" / "state").symlink_to(outside / "secret.txt")
    ids["outside_model"] = plant(data, "cancelled", argv=("env.model_path=/etc/passwd", "--preset", "cpu"))
    (data / "runs" / ids["outside_model"] / "checkpoints" / "16").mkdir(parents=True)
    ids["deletable"] = plant(data, "succeeded")
    (data / "runs" / ids["deletable"]).mkdir()

    srv = Server(data, subprocess_env, args=("--allow-path", str(allowed)))
    srv.root, srv.allowed, srv.outside, srv.ids = root, allowed, outside, ids
    try:
        srv.start()
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()
        sleeper.kill()
        sleeper.wait()


def test_a_log_reached_through_a_link_is_never_served(server):
    ids, data = server.ids, server.data
    assert server.job(ids["holder"])["status"] == "running"  # adopted: it holds the one slot
    for query in ("", "?offset=0", "?follow=true"):
        status, _, reply = server("GET", f"/logs/{ids['linked_log']}.log{query}")
        assert (status, reply) == (404, {"detail": f"log: no log '{ids['linked_log']}.log'"}), (query, reply)
    # A linked logs/ folder: the holder's log is served until the folder is a link, then never.
    status, _, body = server("GET", f"/logs/{ids['holder']}.log")
    assert (status, body) == (200, b"the holder's own log\n")
    fake_logs = server.root / "fake_logs"
    fake_logs.mkdir()
    (fake_logs / f"{ids['holder']}.log").write_text(SECRET)
    undo = swapped(data / "logs", fake_logs)
    try:
        for query in ("", "?follow=true"):
            status, _, reply = server("GET", f"/logs/{ids['holder']}.log{query}")
            assert status == 404 and "SECRET" not in str(reply), (query, reply)
    finally:
        undo()
    assert server("GET", f"/logs/{ids['holder']}.log")[2] == b"the holder's own log\n"
    assert (server.outside / "secret.txt").read_text() == SECRET


def test_delete_removes_nothing_through_a_linked_runs_folder(server):
    job_id = server.ids["deletable"]
    fake_runs = server.root / "fake_runs"
    (fake_runs / job_id).mkdir(parents=True)
    (fake_runs / job_id / "keep.txt").write_text("not the server's")
    undo = swapped(server.data / "runs", fake_runs)
    try:
        status, _, reply = server("DELETE", f"/jobs/{job_id}?files=true")
    finally:
        undo()
    assert (status, reply) == (200, {"job_id": job_id, "deleted": True, "files_removed": False}), reply
    assert (fake_runs / job_id / "keep.txt").read_text() == "not the server's"
    assert (server.data / "runs" / job_id).is_dir()  # the real one: also left (the request named the link)


def test_paths_outside_the_allowed_roots_get_one_line_whether_or_not_they_exist(server):
    data, allowed, outside = server.data, server.allowed, server.outside
    jobs_before, runs_before = server("GET", "/jobs")[2], runs(server)
    values = {
        "exists": ["/etc/passwd", str(outside / "secret.txt"), str(outside), str(data / "jobs.sqlite3"),
                   str(allowed / "escape.xml"), f"{allowed}/../outside/secret.txt",
                   str(data / "runs" / server.ids["linked_run"])],
        "missing": [str(outside / "missing.xml"), "/nonexistent/dir/model.xml", f"{allowed}/../outside/missing.xml",
                    str(allowed) + "-sibling/model.xml"],
        "relative": ["humanoid.xml", "../allowed/humanoid.xml", "./x"],
    }
    for field in ("env.model_path", "init_from"):
        replies = set()
        for kind, paths in values.items():
            for path in paths:
                for overrides in ([*TINY, f"{field}={path}"], {**dict(o.split("=") for o in TINY), field: path}):
                    status, _, reply = server("POST", "/reinforcement-learning", {**OK, "overrides": overrides})
                    replies.add((status, reply["detail"]))
                    assert (status, reply["detail"]) == (400, outside_line(field)), (kind, path, reply)
        assert replies == {(400, outside_line(field))}
    # The whole env mapping at once is the same request.
    status, _, reply = server("POST", "/reinforcement-learning",
                              {**OK, "overrides": [*TINY, 'env={"model_path": "/etc/passwd"}']})
    assert (status, reply["detail"]) == (400, outside_line("env.model_path")), reply
    assert server("GET", "/jobs")[2] == jobs_before and runs(server) == runs_before  # nothing was created


def test_robot_specs_low_levels_and_eval_worlds_are_paths_too(server):
    """A robot spec file, navigate's low level and the eval world's model are files the run opens:
    held to the roots like env.model_path; a registered robot's name and `untrained` are not paths."""
    outside = server.outside
    joystick = {**OK, "task": "joystick", "overrides": ["ppo.num_envs=4", "ppo.num_minibatches=2"]}
    for task, field, value in (("joystick", "env.robot", str(outside / "robot.toml")),
                               ("joystick", "env.robot", "robot.toml"),
                               ("joystick", "eval_env.robot", str(outside / "robot.toml")),
                               ("humanoid_run", "eval_env.model_path", "/etc/passwd"),
                               ("navigate", "env.low_level", str(outside / "run"))):
        body = {**(joystick if task == "joystick" else OK), "task": task}
        body["overrides"] = [*body["overrides"], f"{field}={value}"]
        status, _, reply = server("POST", "/reinforcement-learning", body)
        assert (status, reply["detail"]) == (400, outside_line(field)), (field, value, reply)
    status, _, job = server("POST", "/reinforcement-learning",
                            {**joystick, "overrides": [*joystick["overrides"], "env.robot=jh_mini"]})
    assert status == 201, job
    assert server("POST", f"/jobs/{job['job_id']}/cancel")[2]["status"] == "cancelled"


def test_paths_under_an_allowed_root_are_accepted(server):
    allowed = server.allowed
    status, _, job = server("POST", "/reinforcement-learning",
                            {**OK, "overrides": [*TINY, f"env.model_path={allowed / 'humanoid.xml'}"]})
    assert status == 201 and job["status"] == "queued", job  # the holder has the slot: nothing trains
    assert server("POST", f"/jobs/{job['job_id']}/cancel")[2]["status"] == "cancelled"
    # init_from under the root passes the service's check; the runner then reads it (and, here,
    # finds no real checkpoint): its own line, not the refusal.
    for path in (allowed / "src", allowed / "missing_run"):
        status, _, reply = server("POST", "/reinforcement-learning", {**OK, "overrides": [*TINY, f"init_from={path}"]})
        assert status == 400 and reply["detail"].startswith(f"init_from: {path}"), reply
        assert reply["detail"] != outside_line("init_from")
    # ... but not through a link inside its checkpoints.
    status, _, reply = server("POST", "/reinforcement-learning",
                              {**OK, "overrides": [*TINY, f"init_from={allowed / 'linked_src'}"]})
    assert (status, reply["detail"]) == (400, f"init_from: {allowed / 'linked_src/checkpoints/16/state'} is a "
                                              f"symbolic link; a checkpoint is read only without symbolic links")


def test_resume_checks_the_paths_and_reads_no_checkpoint_through_a_link(server):
    ids, data = server.ids, server.data
    status, _, reply = server("POST", f"/jobs/{ids['outside_model']}/resume")
    assert (status, reply["detail"]) == (400, outside_line("env.model_path")), reply
    status, _, reply = server("POST", f"/jobs/{ids['linked_run']}/resume")
    assert (status, reply["detail"]) == (409, f"run_dir: {data / 'runs' / ids['linked_run']} is a symbolic link or "
                                              "not a directory; the service reads and writes a job's files only "
                                              "inside its data directory, never through a symbolic link"), reply
    status, _, reply = server("POST", f"/jobs/{ids['link_in_checkpoint']}/resume", {"num_timesteps": 1000})
    run_dir = data / "runs" / ids["link_in_checkpoint"]
    assert status == 409 and reply["detail"].startswith(
        f"run_dir: {run_dir / 'checkpoints/16/state'} is a symbolic link; the service"), reply
    for name in ("outside_model", "linked_run", "link_in_checkpoint"):
        assert server.job(ids[name])["status"] == "cancelled"  # nothing was queued


def test_a_job_never_writes_through_a_linked_log_or_run_directory(tmp_path, subprocess_env):
    """Default roots (the data directory). Jobs planted as queued start when the server does:
    one whose log is a link and one whose run directory is a link both fail at once, and
    nothing is written where the links point."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    for folder in (data / "runs", data / "logs", outside / "run"):
        folder.mkdir(parents=True)
    target = outside / "target.txt"
    target.write_text("the target's own text\n")
    linked_log = plant(data, "queued", argv=("--preset", "cpu", *TINY))
    (data / "logs" / f"{linked_log}.log").symlink_to(target)
    dangling = plant(data, "queued", argv=("--preset", "cpu", *TINY))
    (data / "logs" / f"{dangling}.log").symlink_to(outside / "created.txt")  # O_CREAT must not create it
    linked_run = plant(data, "queued", argv=("--preset", "cpu", *TINY))
    (data / "runs" / linked_run).symlink_to(outside / "run", target_is_directory=True)
    source = plant(data, "cancelled")
    (data / "runs" / source / "checkpoints" / "16").mkdir(parents=True)
    server = Server(data, subprocess_env)
    server.start()
    try:
        for job_id, where in ((linked_log, data / "logs" / f"{linked_log}.log"),
                              (dangling, data / "logs" / f"{dangling}.log"), (linked_run, data / "runs" / linked_run)):
            job = server.wait_status(job_id, "failed", "running", "succeeded")
            assert job["status"] == "failed" and job["exit_code"] is None, job
            assert job["error"].startswith(f"could not start: {where} is a symbolic link"), job
            assert job["error"].endswith("never through a symbolic link"), job
        assert target.read_text() == "the target's own text\n" and not (outside / "created.txt").exists()
        assert list((outside / "run").iterdir()) == []
        # The data directory is the default root: a run in it passes (the runner reads it and
        # finds no real checkpoint); a path outside it does not.
        run_dir = data / "runs" / source
        status, _, reply = server("POST", "/reinforcement-learning",
                                  {**OK, "overrides": [*TINY, f"init_from={run_dir}"]})
        assert status == 400 and reply["detail"].startswith(f"init_from: {run_dir}"), reply
        status, _, reply = server("POST", "/reinforcement-learning",
                                  {**OK, "overrides": [*TINY, f"env.model_path={target}"]})
        assert (status, reply["detail"]) == (400, outside_line("env.model_path")), reply
    finally:
        server.stop()
    assert target.read_text() == "the target's own text\n"


def test_allow_path_parses_and_a_bad_one_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    models, link = tmp_path / "models", tmp_path / "link"
    models.mkdir()
    link.symlink_to(models, target_is_directory=True)
    data = tmp_path / "data"
    settings = jobs_main.settings(["--allow-path", str(models), "--allow-path", str(link), "--allow-path", "/etc",
                                   "--data", str(data)], environ={})
    assert settings.limits.allowed_roots == (str(models.resolve()), "/etc")  # resolved, once each
    assert jobs_main.settings(["--data", str(data)], environ={}).limits.allowed_roots == ()
    assert Manager(Store(tmp_path), tmp_path, tasks={}).allowed_roots == (str(tmp_path.resolve()),)  # the default

    monkeypatch.setattr(jobs_main, "serve", lambda *a, **k: pytest.fail("the server must not start"))
    (tmp_path / "a_file").write_text("")
    for value in (str(tmp_path / "missing"), str(tmp_path / "a_file"), ""):
        code = jobs_main.main(["--allow-path", value, "--port", str(free_port()), "--data", str(data)])
        err = capsys.readouterr().err
        assert (code, err) == (2, f"error: --allow-path: must be an existing directory, got {value!r}\n"), err
    assert not data.exists()  # refused before the data directory is created

    # A data directory whose logs/ is a link is refused the same way, before the lock file is made.
    (data / "runs").mkdir(parents=True)
    (data / "logs").symlink_to(models, target_is_directory=True)
    code = jobs_main.main(["--port", str(free_port()), "--data", str(data)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: --data: {data / 'logs'} is a symbolic link or not a directory")
    assert err.count("\n") == 1 and not (data / "server.lock").exists()
    os.unlink(data / "logs")

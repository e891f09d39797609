"""The HTTP API (FastAPI): submit, list, follow, cancel and resume training jobs.

    POST /reinforcement-learning     start a job -> 201 {job_id, status, estimated_completion,
                                     estimated_completion_hours, log_link}
    GET  /jobs, GET /jobs/{id}       status, step, latest eval return, ETA, run directory
    GET  /logs/{id}.log              the job's output; ?offset=N for the bytes after N (the new
                                     offset is in the X-Log-Offset header); ?follow=true streams
                                     until the job ends or the server stops
    POST /jobs/{id}/cancel           SIGTERM: the run saves a checkpoint and stops -> cancelled
    POST /jobs/{id}/resume           continue a cancelled/failed/resumable job from its checkpoint
    DELETE /jobs/{id}[?files=true]   forget an ended job (and remove its run directory and log)
    GET  /schema                     JSON Schema of the run config: every field `overrides` may set
    GET  /health                     open without the token

Errors are `{"detail": ...}`: 422 for malformed JSON, wrong types or a number out of its range,
400 with one line `<field>: <constraint>` for a request the runner or the service refuses
(checked in-process before any process starts; the operator's `Limits` included), 401 without
the bearer token (when the server has one), 404 for an unknown job or log, 409 for a request the
job's status or progress does not allow, 413 for a body or an `overrides` over the limits, 416
for a log offset past the log's end. An error quotes at most a short excerpt of the input.

Files: a log is read only as a regular file inside the data directory's logs/ folder, opened
without following a link (`jaxhum.jobs.files`); any other (a symbolic link, a linked logs/) is
answered as an unknown log, 404. A request's `env.model_path` and `init_from` (on submit and on
resume) must be absolute paths under an allowed root (`--allow-path`, default the data
directory), else 400 with one fixed line, `<field>: must be an absolute path under an allowed
root (--allow-path)`, whether the path exists or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

import fastapi
import pydantic
from fastapi import encoders, exceptions, responses

from jaxhum.jobs import files, guards
from jaxhum.jobs import limits as limits_lib
from jaxhum.jobs import tasks as tasks_lib
from jaxhum.jobs.limits import Limits, cut, excerpt, short_input
from jaxhum.jobs.manager import PHASES, Conflict, Manager
from jaxhum.jobs.store import ACTIVE, STATUSES, Job, Store

__all__ = ["create_app"]

_JOB_ID = re.compile(r"[0-9a-f]{32}")
_LOG_CHUNK = 1 << 20  # bytes per log response, so a reply stays bounded
_FOLLOW_POLL_S, _FOLLOW_TICKS = 0.5, 5  # a follower looks for new log bytes every 0.5 s, for a stop every 0.1 s
_LINE_CHARS = 300  # the most of a refusal's one line a reply carries (the runner's may quote a value)
_Timesteps = Annotated[int, pydantic.Field(strict=True, ge=1, le=limits_lib.TIMESTEPS_MAX)]
_Iterations = Annotated[int, pydantic.Field(strict=True, ge=1, le=limits_lib.ITERATIONS_MAX)]
_Seed = Annotated[int, pydantic.Field(strict=True, ge=0, le=limits_lib.SEED_MAX)]
_OverrideValue = str | bool | int | float | list[str | bool | int | float]


class TrainRequest(pydantic.BaseModel):
    """Body of POST /reinforcement-learning. Give exactly one of num_iterations, num_timesteps."""

    model_config = pydantic.ConfigDict(extra="forbid")

    task: str = pydantic.Field(description="experiment name, e.g. humanoid_run")
    policy_type: str = pydantic.Field(description="the algorithm: PPO, SAC or TD3 (any case)")
    num_iterations: _Iterations | None = pydantic.Field(
        None, description="training iterations of num_envs * unroll_length env steps each (PPO; SAC and TD3: "
        "num_envs env steps each)")
    num_timesteps: _Timesteps | None = pydantic.Field(
        None, description="env steps to train for (at most the server's --max-timesteps)")
    seed: _Seed | None = pydantic.Field(None, description=f"the run's seed, in [0, {limits_lib.SEED_MAX}]")
    preset: str | None = pydantic.Field(None, description="config preset (default: by the machine's accelerator)")
    overrides: list[str] | dict[str, _OverrideValue] = pydantic.Field(
        default_factory=list,
        description='config overrides: ["ppo.num_envs=64", ...] or {"ppo.num_envs": 64}; the fields: GET /schema')

    @pydantic.model_validator(mode="after")
    def _one_length(self) -> TrainRequest:
        if (self.num_iterations is None) == (self.num_timesteps is None):
            raise ValueError("give exactly one of num_iterations and num_timesteps")
        return self


class ResumeRequest(pydantic.BaseModel):
    """Body of POST /jobs/{id}/resume (optional): a new length for the run, in total."""

    model_config = pydantic.ConfigDict(extra="forbid")

    num_iterations: _Iterations | None = None
    num_timesteps: _Timesteps | None = pydantic.Field(
        None, description="past the step the job reached, at most the server's --max-timesteps")

    @pydantic.model_validator(mode="after")
    def _at_most_one(self) -> ResumeRequest:
        if self.num_iterations is not None and self.num_timesteps is not None:
            raise ValueError("give at most one of num_iterations and num_timesteps")
        return self


class Error(pydantic.BaseModel):
    """An error reply (422's `detail` is FastAPI's list of errors instead)."""

    detail: str = pydantic.Field(description="one line, `<field>: <constraint>`")


_ERRORS = {
    400: "the runner or the service refuses the request (one line naming the field), or the body is not JSON",
    401: "no bearer token, or a wrong one (on a server that has one)",
    404: "no such job or log",
    409: "the job's status or progress does not allow the request",
    413: "the body or its overrides are over the server's limits",
    416: "the offset is past the log's end",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route answers (besides FastAPI's 422), as
    JSON whatever the route's own replies are (FastAPI would give them the route's media type)."""
    content = {"application/json": {"schema": Error.model_json_schema()}}
    return {code: {"description": _ERRORS[code], "content": content} for code in codes}


class Health(pydantic.BaseModel):
    """Reply of GET /health."""

    status: str = pydantic.Field(description="ok")
    tasks: list[str] = pydantic.Field(description="the experiments the server trains")
    policy_types: list[str]
    max_concurrent: int = pydantic.Field(description="jobs running at once (--max-concurrent)")
    jobs: dict[str, int] = pydantic.Field(description="how many jobs have each status")


class JobCreated(pydantic.BaseModel):
    job_id: str
    status: str
    estimated_completion: str | None = pydantic.Field(
        description="ISO UTC: when the job ends if it starts now, from the experiment's documented rate")
    estimated_completion_hours: float | None = pydantic.Field(
        None, description="hours the job takes: its env steps over the experiment's documented steps/s for the "
        "preset's machine (`STEPS_PER_SECOND`, `START_SECONDS`); null when it documents none")
    log_link: str


class JobDeleted(pydantic.BaseModel):
    """Reply of DELETE /jobs/{id}."""

    job_id: str
    deleted: bool
    files_removed: bool


class JobView(pydantic.BaseModel):
    job_id: str
    task: str
    policy_type: str
    status: str = pydantic.Field(description=" | ".join(STATUSES))
    phase: str = pydantic.Field(description=" | ".join(PHASES) + "; the ETA is given only while training")
    step: int
    num_timesteps: int
    eval_return: float | None = pydantic.Field(description="latest eval/episode_reward")
    steps_per_second: float | None
    estimated_completion: str | None = pydantic.Field(description="ISO UTC; null until a log point gives a rate")
    seed: int | None
    preset: str | None
    command: list[str] = pydantic.Field(description="the experiment's arguments (before --out)")
    run_dir: str
    log_link: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    exit_code: int | None
    cancel_requested: bool
    error: str


def _view(request: fastapi.Request, job: Job) -> JobView:
    return JobView(
        job_id=job.id, task=job.task, policy_type=job.policy_type, status=job.status,
        phase=request.app.state.manager.phase(job), step=job.step,
        num_timesteps=job.num_timesteps, eval_return=job.eval_return, steps_per_second=job.steps_per_second,
        estimated_completion=job.eta if job.status == "running" else None, seed=job.seed, preset=job.preset,
        command=list(job.argv), run_dir=job.run_dir, log_link=_log_link(request, job.id), created_at=job.created_at,
        started_at=job.started_at or None, finished_at=job.finished_at or None, exit_code=job.exit_code,
        cancel_requested=job.cancel_requested, error=job.error,
    )


def _log_link(request: fastapi.Request, job_id: str) -> str:
    return str(request.url_for("read_log", name=f"{job_id}.log"))


def _bad(err: Exception) -> fastapi.HTTPException:
    line = str(err)
    return fastapi.HTTPException(400, line if len(line) <= _LINE_CHARS else line[:_LINE_CHARS - 3] + "...")


async def _validation_error(request: fastapi.Request, exc: exceptions.RequestValidationError) -> responses.Response:
    """FastAPI's 422 (the list of errors in `detail`), with each error's `input` and `loc`
    quoting at most a short excerpt of the request: the default echoes the input whole."""
    del request
    errors = []
    for error in exc.errors():
        error = dict(error)
        if "input" in error:
            error["input"] = short_input(error["input"])
        error["loc"] = [cut(p) if isinstance(p, str) else p for p in error.get("loc", ())]  # e.g. an unknown key
        errors.append(error)
    return responses.JSONResponse(status_code=422, content={"detail": encoders.jsonable_encoder(errors)})


@functools.lru_cache(maxsize=1)
def _jobs_backend(env: tuple[tuple[str, str], ...]) -> str:
    """JAX's default backend as a job process sees it (probed once in a subprocess, so the
    server itself never claims an accelerator)."""
    out = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"],
                         env=dict(env), capture_output=True, text=True, timeout=300)
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else "cpu"


def create_app(data_dir: str | os.PathLike, max_concurrent: int = 1, stop_timeout: float = 60.0,
               env: Mapping[str, str] | None = None, limits: Limits | None = None,
               token: str | None = None, **manager_options: Any) -> fastapi.FastAPI:
    """The service over `data_dir` (jobs.sqlite3, runs/, logs/); jobs start with `env`
    (default: the server's environment; never the token's variable). Requests are held to
    `limits` (default: `Limits()`; its `allowed_roots`, default the data directory, bound
    `env.model_path` and `init_from`); with a `token`, every route but /health needs
    `Authorization: Bearer <token>`. `manager_options`: more arguments of `Manager` (tests:
    `program`, `after_spawn`, `poll_interval`).

    Stopping: `app.state.manager.begin_stop()` (the command line calls it from its signal
    handler) ends every log follower within a tenth of a second and signals the jobs at once; the
    lifespan's end calls it too, then waits for the jobs (`Manager.stop`)."""
    limits = Limits() if limits is None else limits
    # The server validates configs and may build tasks in-process: keep its JAX on the CPU,
    # whatever accelerator the jobs will use.
    import jax

    jax.config.update("jax_platforms", "cpu")
    data_dir = pathlib.Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The jobs never see the token.
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != limits_lib.TOKEN_ENV}
    known = tasks_lib.discover()
    manager = Manager(Store(data_dir), data_dir, known, max_concurrent=max_concurrent,
                      stop_timeout=stop_timeout, env=env, allowed_roots=limits.allowed_roots, **manager_options)

    @contextlib.asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
        manager.start()
        try:
            yield
        finally:
            manager.begin_stop()
            await asyncio.to_thread(manager.stop)

    app = fastapi.FastAPI(title="jaxhum training jobs", lifespan=lifespan,
                          description="Train jaxhum experiments as background jobs.")
    app.state.manager = manager
    app.add_exception_handler(exceptions.RequestValidationError, _validation_error)
    app.add_middleware(guards.BodyLimit, max_bytes=limits.max_body_bytes)
    if token is not None:  # added last, so it runs first: an unauthenticated body is never read
        app.add_middleware(guards.BearerAuth, token=token)
    jobs = _Jobs(manager, known, limits)
    _add_submit_route(app, jobs)
    _add_job_routes(app, jobs)
    _add_log_route(app, manager)
    _add_service_routes(app, jobs)
    return app


@dataclasses.dataclass(frozen=True)
class _Jobs:
    """What the routes share: the manager, the servable tasks and the checks on a request."""

    manager: Manager
    known: Mapping[str, tasks_lib.Task]
    limits: Limits

    def get_job(self, job_id: str) -> Job:
        job = self.manager.store.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise fastapi.HTTPException(404, f"job_id: no job {excerpt(job_id)}")
        return job

    def task_of(self, name: str) -> tasks_lib.Task:
        if name not in self.known:
            raise fastapi.HTTPException(
                400, f"task: must be one of {', '.join(sorted(self.known))}, got {excerpt(name)}")
        return self.known[name]

    def check_limits(self, config: Any, total_steps: int, length_field: str) -> None:
        """The operator's limits on a resolved run config (`length_field`: the request's field
        that set its length).

        Raises:
          tasks_lib.InvalidJob: one line naming the field over its limit and the flag that sets it.
        """
        from jaxhum.run import config as run_config

        limits = self.limits
        num_envs = run_config.trainer_config(config).num_envs
        group = "ppo" if config.algorithm == "ppo" else "off_policy"
        if num_envs > limits.max_envs:
            raise tasks_lib.InvalidJob(f"{group}.num_envs: must be at most {limits.max_envs} on this server "
                                       f"(--max-envs), got {num_envs}")
        if config.num_seeds > limits.max_seeds:
            raise tasks_lib.InvalidJob(f"num_seeds: must be at most {limits.max_seeds} on this server "
                                       f"(--max-seeds), got {config.num_seeds}")
        self.check_timesteps(total_steps, length_field)

    def check_timesteps(self, steps: int, length_field: str) -> None:
        if steps > self.limits.max_timesteps:
            raise tasks_lib.InvalidJob(f"{length_field}: a run may train at most {self.limits.max_timesteps} env "
                                       f"steps on this server (--max-timesteps), got {steps}")

    def default_preset(self, task: tasks_lib.Task) -> str | None:
        """The preset the experiment would pick on the jobs' machine ('gpu' with an accelerator)."""
        backend = _jobs_backend(tuple(sorted(self.manager.env.items())))
        wanted = "cpu" if backend == "cpu" else "gpu"
        return wanted if wanted in task.presets else None

    @staticmethod
    def resolve_length(task: tasks_lib.Task, argv: list[str], num_iterations: int | None,
                       num_timesteps: int | None) -> int | None:
        """num_timesteps from num_iterations * env steps per iteration of the resolved config."""
        if num_iterations is None:
            return num_timesteps
        from jaxhum.run import config as run_config

        return num_iterations * run_config.steps_per_iteration(task.prepare(argv).config)

    @staticmethod
    def total_steps(prepared: Any) -> int:
        from jaxhum.run import config as run_config

        return run_config.num_iterations(prepared.config) * run_config.steps_per_iteration(prepared.config)

    def argv_of(self, body: TrainRequest, task: tasks_lib.Task, out: list[str],
                policy: str = "PPO") -> tuple[list[str], str | None]:
        """The experiment's command line for a request (before `out`) and its preset; `policy`
        (a POLICY_TYPES entry) chooses the algorithm.

        Raises:
          tasks_lib.InvalidJob: a bad override, preset or length, a path outside the allowed roots.
        """
        argv = tasks_lib.overrides_argv(body.overrides) + tasks_lib.algorithm_argv(policy)
        if body.preset is not None and body.preset not in task.presets:
            raise tasks_lib.InvalidJob(f"preset: must be one of {', '.join(task.presets)}, got {excerpt(body.preset)}")
        preset = body.preset if body.preset is not None else self.default_preset(task)
        if preset is not None:
            argv += ["--preset", preset]
        if body.seed is not None:
            argv += ["--seed", str(body.seed)]
        self.manager.check_paths(task, argv)  # before anything (the runner's check too) opens them
        length = self.resolve_length(task, argv + out, body.num_iterations, body.num_timesteps)
        return argv + ["--num-timesteps", str(length)], preset


def _add_submit_route(app: fastapi.FastAPI, jobs: _Jobs) -> None:
    """POST /reinforcement-learning."""

    @app.post("/reinforcement-learning", status_code=201, response_model=JobCreated,
              responses=_errors(400, 401, 413))
    def submit(body: TrainRequest, request: fastapi.Request) -> JobCreated:
        """Checks and starts (or queues) a training job."""
        max_overrides = jobs.limits.max_overrides
        if len(body.overrides) > max_overrides:
            raise fastapi.HTTPException(413, f"overrides: must be at most {max_overrides} items on this server "
                                        f"(--max-overrides), got {len(body.overrides)}")
        task = jobs.task_of(body.task)
        policy = tasks_lib.policy_of(body.policy_type)
        if policy is None:
            raise fastapi.HTTPException(400, f"policy_type: must be one of {', '.join(tasks_lib.POLICY_TYPES)}, "
                                        f"got {excerpt(body.policy_type)}")
        length_field = "num_timesteps" if body.num_timesteps is not None else "num_iterations"
        job_id = jobs.manager.new_id()
        out = ["--out", str(jobs.manager.run_dir(job_id))]
        try:
            if body.num_timesteps is not None:  # before any parsing: the cheapest refusal first
                jobs.check_timesteps(body.num_timesteps, length_field)
            argv, preset = jobs.argv_of(body, task, out, policy)
            prepared = task.prepare(argv + out)
            total_steps = jobs.total_steps(prepared)
            jobs.check_limits(prepared.config, total_steps, length_field)
        except tasks_lib.InvalidJob as err:
            raise _bad(err) from None
        job = jobs.manager.submit(job_id, task.name, policy, argv, total_steps, prepared.config.seed, preset)
        hours = _estimated_hours(task, preset, total_steps)
        eta = job.eta
        if eta is None and hours is not None:
            eta = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=hours)).isoformat(timespec="seconds")
        return JobCreated(job_id=job.id, status=job.status, estimated_completion=eta,
                          estimated_completion_hours=hours, log_link=_log_link(request, job.id))


def _estimated_hours(task: tasks_lib.Task, preset: str | None, total_steps: int) -> float | None:
    """Hours a job of `total_steps` env steps takes on the machine `preset` is for: START_SECONDS +
    total_steps / STEPS_PER_SECOND of the experiment module (figures it documents per preset);
    None when it documents no rate for the preset."""
    module = sys.modules.get(task.get_config.__module__)
    rate = getattr(module, "STEPS_PER_SECOND", {}).get(preset)
    if not rate:
        return None
    start = getattr(module, "START_SECONDS", {}).get(preset, 0.0)
    return round((start + total_steps / rate) / 3600.0, 3)


def _add_job_routes(app: fastapi.FastAPI, jobs: _Jobs) -> None:
    """GET /jobs, GET /jobs/{id}, POST /jobs/{id}/cancel, DELETE /jobs/{id}, POST /jobs/{id}/resume."""

    @app.get("/jobs", response_model=list[JobView], responses=_errors(401))
    def list_jobs(request: fastapi.Request) -> list[JobView]:
        """Every job, oldest first."""
        return [_view(request, j) for j in jobs.manager.store.list()]

    @app.get("/jobs/{job_id}", response_model=JobView, responses=_errors(401, 404))
    def read_job(job_id: str, request: fastapi.Request) -> JobView:
        return _view(request, jobs.get_job(job_id))

    @app.post("/jobs/{job_id}/cancel", response_model=JobView, responses=_errors(401, 404, 409))
    def cancel(job_id: str, request: fastapi.Request) -> JobView:
        """Queued: cancelled at once. Running: SIGTERM; the run checkpoints, then the job is cancelled."""
        try:
            return _view(request, jobs.manager.cancel(jobs.get_job(job_id).id))
        except Conflict as err:
            raise fastapi.HTTPException(409, str(err)) from None

    @app.delete("/jobs/{job_id}", response_model=JobDeleted, responses=_errors(401, 404, 409))
    def delete(job_id: str, files: bool = False) -> JobDeleted:
        """Removes an ended job from the table (409 while it is queued or running); with
        `?files=true` also its run directory and log, so the data directory does not grow without end."""
        try:
            removed = jobs.manager.delete(jobs.get_job(job_id).id, files=files)
        except Conflict as err:
            raise fastapi.HTTPException(409, str(err)) from None
        return JobDeleted(job_id=job_id, deleted=True, files_removed=removed)

    @app.post("/jobs/{job_id}/resume", response_model=JobView, responses=_errors(400, 401, 404, 409, 413))
    def resume(job_id: str, request: fastapi.Request, body: ResumeRequest | None = None) -> JobView:
        """Continues a cancelled, failed or resumable job from its newest checkpoint, optionally
        to a new total length (past the step the job reached)."""
        job = jobs.get_job(job_id)
        body = body or ResumeRequest()
        length_field = "num_timesteps" if body.num_timesteps is not None else "num_iterations"
        manager = jobs.manager
        try:
            manager.check_resumable(job)
            task = jobs.task_of(job.task)
            manager.check_paths(task, job.argv)  # the roots may have changed since it was submitted
            length = jobs.resolve_length(task, manager.resume_argv(job, 0), body.num_iterations,
                                         body.num_timesteps) or 0
            if length:
                jobs.check_timesteps(length, length_field)
                manager.check_resume_length(job, length, length_field)
            prepared = task.prepare(manager.resume_argv(job, length))
            total_steps = jobs.total_steps(prepared)
            jobs.check_timesteps(total_steps, length_field if length else "num_timesteps")
            return _view(request, manager.resume(job.id, length, total_steps))
        except Conflict as err:
            raise fastapi.HTTPException(409, str(err)) from None
        except tasks_lib.InvalidJob as err:
            raise _bad(err) from None


def _add_log_route(app: fastapi.FastAPI, manager: Manager) -> None:
    """GET /logs/{id}.log."""

    @app.get("/logs/{name}", name="read_log", response_class=responses.PlainTextResponse,
             responses=_errors(401, 404, 416))
    async def read_log(name: str, offset: Annotated[int, fastapi.Query(ge=0, le=limits_lib.INT64_MAX)] = 0,
                       follow: bool = False) -> fastapi.Response:
        """The job's output from byte `offset` (at most 1 MiB; X-Log-Offset holds the offset to
        ask for next, X-Job-Status the job's status). With follow=true: streamed until the job ends."""
        match = re.fullmatch(r"([0-9a-f]{32})\.log", name)
        job = manager.store.get(match.group(1)) if match else None
        if job is None:
            raise fastapi.HTTPException(404, f"log: no log {excerpt(name)}")
        try:  # the path is built from the checked id, never from the request text
            fd = manager.open_log(job.id)
        except FileNotFoundError:
            fd = None  # not started yet: an empty log
        except (OSError, files.Refused):  # a link, not a regular file: as if there were no such log
            raise fastapi.HTTPException(404, f"log: no log {excerpt(name)}") from None
        size = os.fstat(fd).st_size if fd is not None else 0
        if offset > size:
            if fd is not None:
                os.close(fd)
            raise fastapi.HTTPException(416, f"offset: must be <= the log's size {size}, got {offset}")
        if follow:
            return responses.StreamingResponse(_follow(manager, job.id, fd, offset), media_type="text/plain")
        data = _read(fd, offset, _LOG_CHUNK) if fd is not None else b""
        if fd is not None:
            os.close(fd)
        headers = {"X-Log-Offset": str(offset + len(data)), "X-Log-Size": str(size), "X-Job-Status": job.status}
        return fastapi.Response(data, media_type="text/plain; charset=utf-8", headers=headers)


def _add_service_routes(app: fastapi.FastAPI, jobs: _Jobs) -> None:
    """GET /health, GET /schema."""

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Open without the token; the job counts come from one SQL query (no row is read)."""
        return Health(status="ok", tasks=sorted(jobs.known), policy_types=list(tasks_lib.POLICY_TYPES),
                      max_concurrent=jobs.manager.max_concurrent, jobs=jobs.manager.store.counts())

    @app.get("/schema", response_model=dict[str, Any], responses=_errors(401))
    def schema() -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of the run config: every field a request's `overrides` may
        set, as a dotted path into it (`ppo.num_envs` is `properties.ppo.properties.num_envs`),
        with its type, default and description.

        `env.*` are fields of the config of the task the experiment trains (its `env_name`,
        e.g. `env.vx_range` of joystick): `$defs/<env_name>`. Defaults are RunConfig's and the
        task's; an experiment's preset changes some of them. Fields marked `readOnly` are set by
        the service from the request (`num_timesteps`, `seed`) or by itself (`out_dir`).
        """
        return _run_schema()


@functools.lru_cache(maxsize=1)
def _run_schema() -> dict[str, Any]:
    """`jaxhum.run.config.json_schema` with the fields the service sets marked readOnly."""
    from jaxhum.run import config as run_config

    schema = run_config.json_schema()
    for name, reason in tasks_lib.SERVER_FIELDS.items():
        field = schema["properties"][name]
        field.update(readOnly=True, description=f"{field.get('description', '')} Set by the service: {reason}.")
    return schema


def _read(fd: int, offset: int, limit: int) -> bytes:
    return os.pread(fd, limit, offset)


async def _follow(manager: Manager, job_id: str, fd: int | None, offset: int) -> AsyncIterator[bytes]:
    """The log from `offset` as it grows, until the job is no longer active or the server stops
    (`manager.stopping`: uvicorn waits for open responses before the app's shutdown runs, so a
    follower must end by itself); reads the open `fd` (None: the log is opened once it appears,
    the same way; closed at the end)."""
    try:
        while not manager.stopping:
            job = manager.store.get(job_id)
            if fd is None:
                try:
                    fd = manager.open_log(job_id)
                except FileNotFoundError:
                    pass
                except (OSError, files.Refused):  # a link appeared: nothing of it is served
                    return
            data = _read(fd, offset, _LOG_CHUNK) if fd is not None else b""
            if data:
                offset += len(data)
                yield data
                continue
            if job is None or job.status not in ACTIVE:
                return
            for _ in range(_FOLLOW_TICKS):  # a stop is noticed within one tick
                if manager.stopping:
                    return
                await asyncio.sleep(_FOLLOW_POLL_S / _FOLLOW_TICKS)
    finally:
        if fd is not None:
            os.close(fd)

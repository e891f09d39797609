"""Property-based fuzzing of the whole job API from its OpenAPI schema (schemathesis).

The app runs in-process (schemathesis's ASGI client: no network, its lifespan started) over a
data directory with one job of each stopped status planted; its jobs' program is `true`, so an
accepted job starts and ends at once and nothing trains. Every operation gets a bounded number
of examples, derandomized (the same cases every run): valid and invalid bodies, path and query
parameters, with and without the bearer token. No response may be a 5xx, and each must match
the schema (its status code documented, its body and headers as declared).
"""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402 - after the skip
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode, checks  # noqa: E402

from jaxhum.jobs.app import create_app  # noqa: E402
from jaxhum.jobs.limits import Limits  # noqa: E402
from jaxhum.jobs.store import Job, Store, utc_now  # noqa: E402

TOKEN = "fuzz-token-" + "f" * 24
MAX_EXAMPLES = 30  # per operation and mode
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance, checks.negative_data_rejection]


def plant(data, status: str, **fields) -> str:
    job_id = uuid.uuid4().hex
    Store(data).insert(Job(id=job_id, task="humanoid_run", policy_type="PPO", status=status, argv=("--preset", "cpu"),
                           num_timesteps=100_000, run_dir=str(data / "runs" / job_id),
                           log_path=str(data / "logs" / f"{job_id}.log"), created_at=utc_now(), **fields))
    return job_id


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tmp_path_factory.mktemp("jobs_fuzz") / "data"


@pytest.fixture(scope="module")
def planted(data) -> list[str]:
    """One job of each stopped status, with a log and a (fake) checkpoint: ids the cases may name."""
    (data / "logs").mkdir(parents=True)
    ids = [plant(data, status, step=320) for status in ("succeeded", "cancelled", "failed", "resumable")]
    for job_id in ids:
        (data / "logs" / f"{job_id}.log").write_text("a line\nanother line\n")
        (data / "runs" / job_id / "checkpoints" / "320").mkdir(parents=True)
    return ids


@pytest.fixture(scope="module")
def api_schema(data, planted):
    app = create_app(data, max_concurrent=1, limits=Limits(max_body_bytes=4096, max_overrides=16), token=TOKEN,
                     program=lambda task, args: ["true"], poll_interval=0.05)
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Authorization": f"Bearer {TOKEN}"})


# Every operation of the API (checked against the schema: a new route must be listed here).
OPERATIONS = (
    ("POST", "/reinforcement-learning"), ("GET", "/jobs"), ("GET", "/jobs/{job_id}"), ("DELETE", "/jobs/{job_id}"),
    ("POST", "/jobs/{job_id}/cancel"), ("POST", "/jobs/{job_id}/resume"), ("GET", "/logs/{name}"),
    ("GET", "/health"), ("GET", "/schema"),
)


# Operations with nothing a schema-breaking case could break: no body, no query, at most a string path.
NO_INPUT = {("GET", "/jobs"), ("GET", "/health"), ("GET", "/schema"), ("GET", "/jobs/{job_id}"),
            ("POST", "/jobs/{job_id}/cancel")}


def test_the_fuzzed_operations_are_all_of_the_api(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


def cases(api_schema, planted: list[str], method: str, path: str, mode: GenerationMode) -> st.SearchStrategy:
    """Cases of one operation; those with a path parameter mostly name a planted job (or its log)."""
    operation = api_schema[path][method]
    strategy = operation.as_strategy(mode)
    names = [f"{j}.log" for j in planted] if path == "/logs/{name}" else planted
    key = "name" if "{name}" in path else "job_id"
    if "{" not in path:
        return strategy
    return st.one_of(strategy, *(operation.as_strategy(mode, path_parameters={key: n}) for n in names))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_request_makes_a_5xx_and_every_response_matches_the_schema(api_schema, planted, method, path, mode):
    if mode == GenerationMode.NEGATIVE and (method, path) in NO_INPUT:
        pytest.skip("nothing to make invalid: no body, no query, at most a string in the path")
    @given(case=cases(api_schema, planted, method, path, mode))
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        # Not `positive_data_acceptance`: the service refuses (400) what the schema cannot say.
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

    run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_without_the_token_every_route_but_health_is_a_documented_401(api_schema, method, path):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=5, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call_and_validate(checks=CHECKS)
        assert response.status_code == (200 if path == "/health" else 401), response.text[:200]

    run()


# Near-valid bodies reach past the schema into the runner's checks and the job table, where the
# 500s once were (integers past 64 bits): real tasks and fields, values of every size and kind.
FIELDS = ("ppo.num_envs", "ppo.unroll_length", "ppo.num_minibatches", "ppo.num_updates_per_batch",
          "ppo.learning_rate", "ppo.policy_hidden_sizes", "num_seeds", "log_every", "eval_every",
          "env.episode_length", "env.model_path", "init_from", "stop_at_eval_return", "seed", "ppo.bogus")
INTEGERS = st.one_of(st.integers(-3, 40), st.integers(-(2**70), 2**70), st.sampled_from([2**31, 2**32, 2**63, 2**64]))
VALUES = st.one_of(INTEGERS, st.floats(allow_nan=True), st.booleans(), st.text(max_size=20),
                   st.lists(st.integers(-(2**65), 2**65), max_size=3), st.sampled_from(["/etc/passwd", "8,8", "inf"]))
TINY_ITEMS = ["ppo.num_envs=4", "ppo.unroll_length=4", "ppo.num_minibatches=2", "ppo.num_updates_per_batch=1",
              "ppo.policy_hidden_sizes=8", "ppo.value_hidden_sizes=8", "ppo.num_eval_envs=2", "env.episode_length=20"]


@st.composite
def train_bodies(draw) -> dict:
    body = {"task": draw(st.sampled_from(["humanoid_run", "walk", "joystick", "balance", "backflip"])),
            "policy_type": draw(st.sampled_from(["PPO", "ppo", "SAC"]))}
    length = draw(st.sampled_from(["num_iterations", "num_timesteps"]))
    body[length] = draw(st.one_of(st.integers(1, 4), INTEGERS))
    for key, values in (("seed", INTEGERS), ("preset", st.sampled_from(["cpu", "gpu", "tpu"]))):
        if draw(st.booleans()):
            body[key] = draw(values)
    extra = draw(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3))
    if draw(st.booleans()):
        body["overrides"] = TINY_ITEMS + [f"{k}={v}" for k, v in extra.items()]
    else:
        body["overrides"] = {**dict(item.split("=") for item in TINY_ITEMS), **extra}
    return body


def test_near_valid_submissions_and_resumes_make_no_5xx(api_schema, planted):
    submit = api_schema["/reinforcement-learning"]["POST"]
    resume = api_schema["/jobs/{job_id}/resume"]["POST"]
    submissions = train_bodies().map(lambda b: submit.Case(body=b, media_type="application/json"))
    lengths = st.one_of(st.just({}), st.fixed_dictionaries({"num_timesteps": INTEGERS}),
                        st.fixed_dictionaries({"num_iterations": INTEGERS}))
    resumes = st.builds(lambda job_id, b: resume.Case(path_parameters={"job_id": job_id}, body=b,
                                                      media_type="application/json"),
                        st.sampled_from(planted), lengths)

    seen = set()

    @given(case=st.one_of(submissions, resumes))
    @settings(max_examples=4 * MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)
        seen.add((case.operation.path, response.status_code))

    run()
    # The cases reach every outcome: accepted, refused by the schema, the runner and the job's state.
    assert {201, 400, 422} <= {code for path, code in seen if path == "/reinforcement-learning"}, seen

"""Data parallel PPO over a 'data' mesh: sharded equals single-device, and two processes agree.

Both run tests/parallel_worker.py in subprocesses (JAX reads XLA_FLAGS and the distributed
settings when it starts, and pytest's process started it long ago), 4 envs for 3 iterations:
  - one process with 2 forced host devices: the one-joint MJX slider (tests/helpers.py) on 1
    device and on a 2-device mesh (compiled when first called, and precompiled from shapes),
    and a tiny humanoid_run on that mesh;
  - two processes of one CPU device each, joined by `jax.distributed.initialize` through a
    localhost coordinator (gloo CPU collectives), each stepping its own 2 envs of the slider.
    Each process compiles the whole program itself (JAX's executable sharing between processes
    misses on the CPU: the processes' cache keys differ); it is compared with the slider's
    2-device run.
The runs compared train the slider: how a run is split over devices and processes is the
trainer's (env batch sharding, gradient all-reduce, normaliser statistics, metric means), the
same for every task, and the slider compiles in seconds where each humanoid_run program set
took minutes. humanoid_run, the MJX program the mesh is for, trains on the 2-device mesh:
sharded the same way, finite, each program compiled once (full tier: `pytest --full`).
Tolerance: splitting the batch changes the order of float32 sums (the gradient all-reduce,
normaliser statistics, metric means), so the sharded run matches to rtol 1e-4 / atol 1e-5 on
the metrics of the first iteration and 1e-3 on the parameters after 3 iterations (a chaotic
task lets an ulp-level difference grow), while two processes of one run agree exactly.
Measured on humanoid_run before the slider took its place: first-iteration metrics within
1.2e-5 relative, parameters within 3e-5 after 3 iterations; the 2-process run equalled the
2-device run exactly.
"""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from jaxhum.rl import parallel

WORKER = pathlib.Path(__file__).with_name("parallel_worker.py")
TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _two_device_worker(subprocess_env, out: pathlib.Path, *args: str) -> dict:
    env = dict(subprocess_env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, str(WORKER), str(out), *args], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def sharded(subprocess_env, tmp_path_factory) -> dict:
    return _two_device_worker(subprocess_env, tmp_path_factory.mktemp("sharded") / "out.json")


def _assert_close(a: dict, b: dict, rtol: float, atol: float) -> None:
    np.testing.assert_allclose(list(a["metrics"][0].values()), list(b["metrics"][0].values()), rtol=rtol, atol=atol)
    for x, y in zip(a["params"], b["params"], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-3)


def test_sharded_run_equals_single_device_run(sharded):
    single, split = sharded["single"], sharded["sharded"]
    assert split["shardings"] == {"obs": ["data"], "obs_devices": 2, "params_replicated": True,
                                  "local_env_rows": 4}
    assert single["metrics"][0].keys() == split["metrics"][0].keys()
    _assert_close(single, split, rtol=1e-4, atol=1e-5)
    assert all(np.isfinite(v) for row in split["metrics"] for v in row.values())


@pytest.mark.full  # ~2.5 min of humanoid_run compiles; the slider tests above check the same sharding
def test_humanoid_trains_on_the_mesh(subprocess_env, tmp_path):
    humanoid = _two_device_worker(subprocess_env, tmp_path / "out.json", "humanoid_run")["humanoid"]
    assert humanoid["shardings"] == {"obs": ["data"], "obs_devices": 2, "params_replicated": True,
                                     "local_env_rows": 4}
    assert len(humanoid["metrics"]) == 3 and "train/episode_reward" in humanoid["metrics"][0]
    assert all(np.isfinite(v) for row in humanoid["metrics"] for v in row.values())
    assert all(np.isfinite(v) for v in humanoid["eval"].values()) and all(np.isfinite(humanoid["params"][0]))
    assert humanoid["compiles"] == {"_iteration": 1, "_evaluate": 1}


def test_two_processes_agree_through_jax_distributed(sharded, subprocess_env, tmp_path):
    env = dict(subprocess_env, JAXHUM_COORDINATOR=f"localhost:{_free_port()}", JAXHUM_NUM_PROCESSES="2")
    env.pop("XLA_FLAGS", None)
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / f"{i}.json")],
                         env=dict(env, JAXHUM_PROCESS_ID=str(i)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err[-3000:]
    first, second = (json.loads((tmp_path / f"{i}.json").read_text()) for i in range(2))
    assert (first["process"], second["process"]) == (0, 1)
    a, b = first["distributed"], second["distributed"]
    assert a["metrics"] == b["metrics"] and a["params"] == b["params"] and a["eval"] == b["eval"]
    # Each process holds the envs of its own device only; the mesh spans both.
    assert a["shardings"] == {"obs": ["data"], "obs_devices": 2, "params_replicated": True,
                              "local_env_rows": 2}
    _assert_close(sharded["precompiled"], a, rtol=1e-4, atol=1e-5)


def test_programs_precompiled_from_sharded_shapes_are_the_ones_the_run_calls(sharded):
    """On the 2-device mesh, the iteration and the evaluation compiled by `parallel.Precompile`
    from `jax.eval_shape` of init (shardings included) are reused: each compiles once."""
    assert sharded["precompiled"]["compiles"] == {"_iteration": 1, "_evaluate": 1}
    assert sharded["sharded"]["compiles"] == {"_iteration": 1, "_evaluate": 1}  # without precompiling


def test_make_mesh_checks_the_device_count():
    mesh = parallel.make_mesh(1)
    assert mesh is None
    with pytest.raises(ValueError, match="devices: must be 'all' or a count in 1.."):
        parallel.make_mesh(0)

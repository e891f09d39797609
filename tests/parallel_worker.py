"""A few PPO iterations of a tiny task, run as a subprocess by tests/test_parallel.py.

    python tests/parallel_worker.py OUT.json              # the slider on 1 device, then on a
                                                          # 2-device mesh (twice: compiled when
                                                          # called, and precompiled)
    python tests/parallel_worker.py OUT.json humanoid_run # humanoid_run on the 2-device mesh
    JAXHUM_COORDINATOR=localhost:PORT JAXHUM_NUM_PROCESSES=2 JAXHUM_PROCESS_ID=i \
        python tests/parallel_worker.py OUT.json          # the slider, one process of a 2-process mesh

The runs compared with each other train the one-joint MJX slider of tests/helpers.py: its
programs compile in seconds where humanoid_run's take minutes, and each process of the 2-process
run compiles its whole program itself. humanoid_run trains once, on the 2-device mesh.

Writes {name: {"metrics": [...per iteration...], "params": [...flat...], "shardings": {...}}}.
XLA_FLAGS (forced host devices) and the distributed variables must be set by the caller: JAX
reads them when it starts, and pytest's own process started JAX long before.
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np

from jaxhum.rl import parallel

DISTRIBUTED = parallel.initialize_distributed()  # before anything touches a device

import helpers  # noqa: E402  (tests/ is on sys.path: this script lives there)

from jaxhum import envs  # noqa: E402
from jaxhum.rl import train  # noqa: E402

ITERATIONS = 3
CONFIG = train.PPOConfig(num_envs=4, unroll_length=2, num_minibatches=2, num_updates_per_batch=2,
                         policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=2)


TASKS = {"humanoid_run": lambda: envs.make("humanoid_run", episode_length=6),
         "slider": lambda: helpers.make_slider_env(episode_length=6)}


def run(mesh, task: str, precompile: bool = False) -> dict:
    """With `precompile`, the iteration and the evaluation compile first from the state's shapes
    (`parallel.Precompile`, as the runner does on a GPU); the result then counts the compiles of
    each program over the whole run."""
    env = TASKS[task]()
    trainer = train.make_train(env, CONFIG, ITERATIONS, mesh=mesh)
    with helpers.CountCompiles() as counter:
        if precompile:
            shapes = jax.eval_shape(trainer.init, jax.random.key(7))
            for fn, args in ((trainer.iteration, (shapes,)), (trainer.evaluate, (shapes, jax.random.key(1)))):
                assert parallel.Precompile(fn, *args).wait() is None
        state = trainer.init(jax.random.key(7))
        rows = []
        for _ in range(ITERATIONS):
            state, metrics = trainer.iteration(state)
            rows.append({k: float(v) for k, v in jax.device_get(metrics).items()})
        params = [np.asarray(jax.device_get(x)).ravel().tolist()
                  for x in jax.tree.leaves((state.policy_params, state.value_params))]
        evaluation = {k: float(v) for k, v in jax.device_get(trainer.evaluate(state, jax.random.key(1))).items()}
    compiles = {name: counter.count(name) for name in ("_iteration", "_evaluate")}
    shardings = {
        "obs": [str(a) for a in state.env_state.obs.sharding.spec] if mesh is not None else [],
        "obs_devices": len(state.env_state.obs.sharding.device_set),
        "params_replicated": bool(jax.tree.leaves(state.policy_params)[0].sharding.is_fully_replicated),
        "local_env_rows": sum(s.data.shape[0] for s in state.env_state.obs.addressable_shards),
    }
    return {"metrics": rows, "params": params, "eval": evaluation, "shardings": shardings, "compiles": compiles}


def main(out: str, task: str = "slider") -> int:
    if DISTRIBUTED:
        results = {"distributed": run(parallel.make_mesh("all"), "slider"), "process": jax.process_index()}
    elif task == "humanoid_run":
        results = {"humanoid": run(parallel.make_mesh(2), "humanoid_run")}
    else:
        mesh = parallel.make_mesh(2)
        results = {"single": run(None, "slider"), "sharded": run(mesh, "slider"),
                   "precompiled": run(mesh, "slider", precompile=True)}
    with open(out, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

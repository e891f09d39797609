"""Is a resumed run bit for bit the uninterrupted one, and what does determinism cost?

humanoid_run with the gpu preset's PPO settings (at `--num-envs`) is trained K iterations three
ways in one process per mode:

  A  K iterations from init, uninterrupted (timed: steady-state env steps/s, compile excluded);
  B  the same again, same trainer and seed (are two uninterrupted runs bitwise equal?);
  C  K/2 iterations, a checkpoint written to disk with the real `CheckpointStore`, restored into
     a freshly built trainer (new jitted functions, compiled again), K/2 more.

Every leaf of the final TrainState of B and of C is compared with A bit for bit; the summary
gives, per group (params, opt_state, normalizer, env_state, key/iteration), whether every leaf is
bitwise equal, how many leaves differ and the largest absolute difference.

Modes, each in its own process (XLA reads XLA_FLAGS once, when the backend starts):
  default        XLA's default flags;
  deterministic  --xla_gpu_deterministic_ops=true, plus --xla_gpu_exclude_nondeterministic_ops=true
                 when this jaxlib knows that flag (each flag is probed first; an unknown flag
                 makes XLA abort, and the summary says which ones exist);
  deterministic_ops_only  (only with --modes) the first flag alone.
A mode whose process fails (e.g. XLA refusing an op it cannot make deterministic) reports
`error` with the end of its stderr instead of figures. The flags are appended to any XLA_FLAGS
already set. Steps/s are steady-state training iterations of run A, compile excluded.

    python benchmarks/resume_determinism.py                       # GPU: 4096 envs, 8+8 iterations
    python benchmarks/resume_determinism.py --num-envs 8192 --iterations 20 --out det.json
    python benchmarks/resume_determinism.py --smoke               # tiny CPU run of the same thing

Prints a JSON summary (and writes it to `--out FILE`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

DETERMINISM_FLAGS = ("--xla_gpu_deterministic_ops=true", "--xla_gpu_exclude_nondeterministic_ops=true")
GROUPS = {
    "params": ("policy_params", "value_params"),
    "opt_state": ("opt_state",),
    "normalizer": ("normalizer",),
    "env_state": ("env_state",),
    "key_and_iteration": ("key", "iteration"),
}


# ----------------------------------------------------------------------------- worker (one mode)


def _config(num_envs: int, iterations: int, smoke: bool) -> Any:
    from experiments import humanoid_run
    from jaxhum.run import config as run_config

    config = humanoid_run.get_config("gpu")
    ppo = dataclasses.replace(config.ppo, num_envs=num_envs)
    if smoke:  # the same code path at a size a 2-core CPU compiles and runs in about a minute
        ppo = dataclasses.replace(ppo, unroll_length=4, num_minibatches=2, num_updates_per_batch=1,
                                  policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=2)
    config = dataclasses.replace(config, ppo=ppo, num_timesteps=iterations * ppo.env_steps_per_iteration,
                                 eval_every=0, env={"episode_length": 20} if smoke else config.env)
    return run_config.validate(config)


def _iterate(trainer: Any, state: Any, n: int) -> tuple[Any, float, float]:
    """n iterations; returns (state, seconds of the first, seconds of the rest)."""
    import jax

    t0 = time.perf_counter()
    state, _ = trainer.iteration(state)
    jax.block_until_ready(state)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n - 1):
        state, _ = trainer.iteration(state)
    jax.block_until_ready(state)
    return state, first, time.perf_counter() - t0


def _host_leaves(state: Any) -> dict[str, dict[str, Any]]:
    """group -> {leaf path: numpy array} (typed keys as their raw data)."""
    import jax
    import numpy as np

    out: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
    for group, fields in GROUPS.items():
        for field in fields:
            for path, leaf in jax.tree_util.tree_flatten_with_path(getattr(state, field))[0]:
                if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                    leaf = jax.random.key_data(leaf)
                out[group][field + jax.tree_util.keystr(path)] = np.asarray(jax.device_get(leaf))
    return out


def _compare(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per group: bitwise equality, number of differing leaves, max abs difference (inf where nan differs)."""
    import numpy as np

    report: dict[str, Any] = {}
    for group in GROUPS:
        differing, max_abs = [], 0.0
        for path, x in a[group].items():
            y = b[group][path]
            if x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes():
                continue
            differing.append(path)
            if x.shape != y.shape:
                max_abs = float("inf")
                continue
            xf, yf = x.astype(np.float64), y.astype(np.float64)
            nan_mismatch = np.isnan(xf) != np.isnan(yf)
            diff = np.abs(np.where(np.isnan(xf) | np.isnan(yf), 0.0, xf - yf))
            max_abs = max(max_abs, float("inf") if nan_mismatch.any() else float(diff.max(initial=0.0)))
        report[group] = {"bitwise_equal": not differing, "leaves": len(a[group]), "leaves_differing": len(differing),
                         "max_abs_diff": max_abs, "first_differing": differing[:3]}
    report["bitwise_equal"] = all(report[g]["bitwise_equal"] for g in GROUPS)
    return report


def worker(num_envs: int, iterations: int, smoke: bool) -> dict[str, Any]:
    import jax

    from jaxhum import config as config_lib
    from jaxhum.run import checkpoint
    from jaxhum.run import config as run_config

    config = _config(num_envs, iterations, smoke)
    per_iteration = run_config.steps_per_iteration(config)
    train_key, _ = jax.random.split(jax.random.key(config.seed))  # as jaxhum.runner does
    half = iterations // 2

    trainer = run_config.build_trainer(config)
    t0 = time.perf_counter()
    init = trainer.init(train_key)
    jax.block_until_ready(init)
    init_s = time.perf_counter() - t0
    state_a, first_s, rest_s = _iterate(trainer, init, iterations)
    state_b, _, rest_b_s = _iterate(trainer, trainer.init(train_key), iterations)

    state_c, _, _ = _iterate(trainer, trainer.init(train_key), half)
    with tempfile.TemporaryDirectory() as run_dir:
        store = checkpoint.CheckpointStore(run_dir)
        store.save(half * per_iteration, state_c, config_lib.to_json(config), {"iteration": half})
        store.close()
        del state_c
        fresh = run_config.build_trainer(config)  # new jitted functions: compiled again
        store = checkpoint.CheckpointStore(run_dir, read_only=True)
        restored = store.restore(template=run_config.state_template(fresh, config))
        store.close()
    state_c, fresh_first_s, _ = _iterate(fresh, restored.state, iterations - half)

    a = _host_leaves(state_a)
    timed = iterations - 1
    return {
        "device": jax.devices()[0].device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "num_envs": config.ppo.num_envs,
        "env_steps_per_iteration": per_iteration,
        "iterations": iterations,
        "resumed_at_iteration": half,
        "init_s": round(init_s, 3),
        "first_iteration_s": round(first_s, 3),
        "fresh_trainer_first_iteration_s": round(fresh_first_s, 3),
        "steps_per_second": timed * per_iteration / rest_s if timed > 0 else None,
        "steps_per_second_repeat": timed * per_iteration / rest_b_s if timed > 0 else None,
        "uninterrupted_repeat_vs_first": _compare(a, _host_leaves(state_b)),
        "resumed_vs_uninterrupted": _compare(a, _host_leaves(state_c)),
    }


# ----------------------------------------------------------------------------- driver


def _flag_known(flag: str) -> tuple[bool, str]:
    """Starts a backend with XLA_FLAGS=flag; XLA aborts on a flag it does not know."""
    env = {**os.environ, "XLA_FLAGS": flag}
    proc = subprocess.run([sys.executable, "-c", "import jax; jax.numpy.zeros(2).block_until_ready()"],
                          env=env, capture_output=True, text=True, timeout=300)
    text = " ".join(proc.stderr.split())[-300:]
    return proc.returncode == 0, text


def _run_mode(flags: list[str], args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--num-envs", str(args.num_envs),
           "--iterations", str(args.iterations)] + (["--smoke"] if args.smoke else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"xla_flags": env["XLA_FLAGS"], "error": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run (about a minute per mode)")
    parser.add_argument("--num-envs", type=int, default=None, help="default 4096 (smoke: 8)")
    parser.add_argument("--iterations", type=int, default=None, help="K, resumed at K/2 (default 16; smoke: 4)")
    parser.add_argument("--modes", default="default,deterministic",
                        help="comma-separated: default, deterministic, deterministic_ops_only")
    parser.add_argument("--out", default=None, help="also write the JSON summary to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.num_envs = args.num_envs or (8 if args.smoke else 4096)
    args.iterations = args.iterations or (4 if args.smoke else 16)
    if args.iterations < 2:
        parser.error("--iterations: must be >= 2 (the resume happens at K/2)")

    if args.worker:
        print(json.dumps(worker(args.num_envs, args.iterations, args.smoke)), flush=True)
        return 0

    requested = [m.strip() for m in args.modes.split(",") if m.strip()]
    names = ("default", "deterministic", "deterministic_ops_only")
    if not requested or set(requested) - set(names):
        parser.error(f"--modes: must be a subset of {', '.join(names)}; got {args.modes!r}")
    known = {flag: _flag_known(flag) for flag in DETERMINISM_FLAGS}
    modes = {
        "default": [],
        "deterministic": [flag for flag in DETERMINISM_FLAGS if known[flag][0]],
        # Only on request (--modes): tells the two flags' shares apart.
        "deterministic_ops_only": [DETERMINISM_FLAGS[0]] if known[DETERMINISM_FLAGS[0]][0] else [],
    }
    summary: dict[str, Any] = {
        "flags_known": {flag: ok for flag, (ok, _) in known.items()},
        "flags_rejected_with": {flag: text for flag, (ok, text) in known.items() if not ok},
        "modes": {},
    }
    for mode in requested:
        t0 = time.perf_counter()
        summary["modes"][mode] = {**_run_mode(modes[mode], args), "wall_s": round(time.perf_counter() - t0, 1)}
    rates = {m: r.get("steps_per_second") for m, r in summary["modes"].items()}
    if rates.get("default") and rates.get("deterministic"):
        summary["deterministic_over_default_steps_per_second"] = rates["deterministic"] / rates["default"]
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Aggregate training env steps/s with K seeds in one program, at a fixed total env count.

For each K the gpu preset of humanoid_run trains K independent seeds in one jitted program
(`make_train(..., num_seeds=K)`, vmap over the train state) with total_envs / K envs per seed;
the figure is K * num_envs_per_seed * unroll_length * iterations / seconds of steady-state
iterations (compile excluded: the first iteration runs before timing). The minibatch count is
scaled down with the envs (never below 1) so that each seed's minibatch keeps the preset's size.

    python benchmarks/multi_seed.py --out multi_seed.json                 # on the GPU, K = 1, 4, 16
    python benchmarks/multi_seed.py --smoke --out /tmp/multi_seed.json    # tiny, on the CPU

Writes a JSON summary to --out and a Markdown table next to it (same name, .md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxhum
from experiments import humanoid_run
from jaxhum.rl.train import make_train


def seed_ppo(ppo, total_envs: int, num_seeds: int):
    """The preset's PPO config with total_envs / K envs per seed and the same minibatch size."""
    if total_envs % num_seeds:
        raise ValueError(f"--total-envs: {total_envs} must be divisible by every K, got K={num_seeds}")
    num_envs = total_envs // num_seeds
    num_minibatches = max(1, round(ppo.num_minibatches * num_envs / ppo.num_envs))
    while (num_envs * ppo.unroll_length) % num_minibatches:
        num_minibatches -= 1
    return dataclasses.replace(ppo, num_envs=num_envs, num_minibatches=num_minibatches)


def measure(env, ppo, num_seeds: int, iterations: int) -> dict:
    """Compile seconds of the first iteration and steady-state aggregate env steps/s."""
    trainer = make_train(env, ppo, num_iterations=iterations + 1, num_seeds=num_seeds)
    keys = jax.random.split(jax.random.key(0), num_seeds) if num_seeds > 1 else jax.random.key(0)
    state = trainer.init(keys)
    t0 = time.perf_counter()
    state, metrics = trainer.iteration(state)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(iterations):
        state, metrics = trainer.iteration(state)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - t0
    steps = num_seeds * ppo.env_steps_per_iteration * iterations
    return {"num_seeds": num_seeds, "envs_per_seed": ppo.num_envs, "num_minibatches": ppo.num_minibatches,
            "iterations": iterations, "seconds": seconds, "compile_s": compile_s,
            "aggregate_steps_per_s": steps / seconds, "per_seed_steps_per_s": steps / seconds / num_seeds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run (cpu preset, 8 envs, K = 1, 2)")
    parser.add_argument("--seeds", default=None, help="K values, comma-separated (default 1,4,16; smoke 1,2)")
    parser.add_argument("--total-envs", type=int, default=None, help="envs over all seeds (default 8192; smoke 8)")
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations per K (default 5; smoke 1)")
    parser.add_argument("--out", required=True, help="JSON summary path (a .md table is written beside it)")
    args = parser.parse_args(argv)
    ks = [int(k) for k in (args.seeds or ("1,2" if args.smoke else "1,4,16")).split(",")]
    total = args.total_envs or (8 if args.smoke else 8192)
    iterations = args.iterations or (1 if args.smoke else 5)
    config = humanoid_run.get_config("cpu" if args.smoke else "gpu")
    ppo = config.ppo
    if args.smoke:
        ppo = dataclasses.replace(ppo, unroll_length=2, num_updates_per_batch=1, num_minibatches=2,
                                  policy_hidden_sizes=(16,), value_hidden_sizes=(16,), num_eval_envs=2)
    env = jaxhum.envs.make(config.env_name, **dict(config.env))
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()})"
    print(f"device: {device}, jax {jax.__version__}, total envs {total}", flush=True)
    rows = []
    for k in ks:
        row = measure(env, seed_ppo(ppo, total, k), k, iterations)
        rows.append(row)
        print(
            f"K={k:3d}  envs/seed {row['envs_per_seed']:6d}  aggregate {row['aggregate_steps_per_s']:12,.0f} steps/s  "
            f"per seed {row['per_seed_steps_per_s']:12,.0f}  compile {row['compile_s']:.1f} s",
            flush=True,
        )
    base = rows[0]["aggregate_steps_per_s"]
    lines = [
        f"device: {device}, jax {jax.__version__}, humanoid_run {'cpu (smoke)' if args.smoke else 'gpu'} preset, "
        f"{total} envs in total, {iterations} timed iterations",
        "",
        "| K seeds | envs per seed | minibatches | aggregate env steps/s | vs K=1 | compile s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['num_seeds']} | {r['envs_per_seed']} | {r['num_minibatches']} | {r['aggregate_steps_per_s']:,.0f} "
        f"| {r['aggregate_steps_per_s'] / base:.2f} | {r['compile_s']:.1f} |"
        for r in rows
    ]
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device, "jax": jax.__version__, "total_envs": total, "rows": rows}, indent=2))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Data-parallel scaling: training env steps/s on 1 device against all local devices.

Weak scaling at a fixed env count per device: the gpu preset of humanoid_run with
--envs-per-device envs on one device, then with n times that many envs split over the n local
devices (`make_train(..., mesh=make_mesh())`: env batch and SGD minibatches sharded, parameters
replicated, gradients all-reduced by XLA). The minibatch count stays the preset's, so each
device's share of a minibatch is the same in both runs. Compile is excluded (the first iteration
runs before timing). The figure of merit is (steps/s on n devices / n) / (steps/s on 1 device).

    python benchmarks/scaling.py --out scaling.json                  # on a machine with 2+ GPUs
    python benchmarks/scaling.py --smoke --out /tmp/scaling.json     # CPU, 2 forced host devices

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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(env, ppo, mesh, iterations: int) -> dict:
    """Compile seconds of the first iteration and steady-state training env steps/s."""
    import jax

    from jaxhum.rl.train import make_train

    trainer = make_train(env, ppo, num_iterations=iterations + 1, mesh=mesh)
    state = trainer.init(jax.random.key(0))
    t0 = time.perf_counter()
    state, metrics = trainer.iteration(state)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(iterations):
        state, metrics = trainer.iteration(state)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - t0
    return {"devices": 1 if mesh is None else mesh.devices.size, "num_envs": ppo.num_envs,
            "steps_per_s": iterations * ppo.env_steps_per_iteration / seconds, "compile_s": compile_s,
            "reward_per_step": float(metrics["train/mean_reward_per_step"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run with 2 forced host devices")
    parser.add_argument("--envs-per-device", type=int, default=None, help="default 8192; smoke 4")
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations (default 5; smoke 1)")
    parser.add_argument("--out", required=True, help="JSON summary path (a .md table is written beside it)")
    args = parser.parse_args(argv)
    if args.smoke:  # must precede JAX's start; splits the CPU into 2 devices
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
        ).strip()
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    import jaxhum
    from experiments import humanoid_run
    from jaxhum.rl import parallel

    per_device = args.envs_per_device or (4 if args.smoke else 8192)
    iterations = args.iterations or (1 if args.smoke else 5)
    config = humanoid_run.get_config("cpu" if args.smoke else "gpu")
    ppo = config.ppo
    if args.smoke:
        ppo = dataclasses.replace(
            ppo,
            unroll_length=2,
            num_updates_per_batch=1,
            num_minibatches=2,
            policy_hidden_sizes=(16,),
            value_hidden_sizes=(16,),
            num_eval_envs=2,
        )
    env = jaxhum.envs.make(config.env_name, **dict(config.env))
    n = jax.local_device_count()
    device = f"{n} x {jax.devices()[0].device_kind} ({jax.default_backend()})"
    print(f"device: {device}, jax {jax.__version__}, {per_device} envs per device", flush=True)
    one = measure(env, dataclasses.replace(ppo, num_envs=per_device), None, iterations)
    all_ = measure(env, dataclasses.replace(ppo, num_envs=per_device * n), parallel.make_mesh(n), iterations)
    efficiency = all_["steps_per_s"] / n / one["steps_per_s"]
    lines = [
        f"device: {device}, jax {jax.__version__}, humanoid_run {'cpu (smoke)' if args.smoke else 'gpu'} preset, "
        f"{per_device} envs per device, {iterations} timed iterations",
        "",
        "| devices | envs | training env steps/s | steps/s per device | compile s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['devices']} | {r['num_envs']} | {r['steps_per_s']:,.0f} | {r['steps_per_s'] / r['devices']:,.0f} "
        f"| {r['compile_s']:.1f} |"
        for r in (one, all_)
    ]
    lines += ["", f"steps/s per device on {n} devices / steps/s on 1 device: {efficiency:.3f}"]
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "device": device,
                "jax": jax.__version__,
                "envs_per_device": per_device,
                "rows": [one, all_],
                "per_device_efficiency": efficiency,
            },
            indent=2,
        )
    )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

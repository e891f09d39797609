"""Raw env step rate of humanoid_run against brax's humanoid, and our training rate against our raw rate;
the same raw and training rates for our robot's `walk` task (no brax anchor exists for it).

Both envs run in this process on the same device: random actions in [-1, 1], autoreset on
(ours built in; brax's through its training wrappers: episode truncation at 1000 steps and
`AutoResetWrapper`), compile excluded (each function runs once before timing), the best of
several timed repeats reported. The training rate is steady-state `Trainer.iteration` calls of
the gpu preset's PPO at the same env count, compile excluded.

    python benchmarks/throughput.py                 # 2048, 8192, 32768 envs on the GPU
    python benchmarks/throughput.py --smoke         # tiny version on the CPU, same table
    python benchmarks/throughput.py --tasks walk    # only walk (no brax column)
    python benchmarks/throughput.py --tasks humanoid_run --num-envs 8192 \
        --variant preset: --variant bf16:ppo.compute_dtype=bfloat16   # training rate per variant
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxhum


def _time_best(fn, *args, repeats: int) -> tuple[float, float]:
    """Runs fn once to compile (returns its seconds) and then `repeats` times; returns (compile_s, best_s)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return compile_s, best


def raw_rate(reset, step, action_size: int, num_envs: int, steps: int, repeats: int) -> float:
    """Env steps per second of `steps` batched steps with random actions (one jitted scan)."""

    @jax.jit
    def run(state, key):
        def body(carry, _):
            s, k = carry
            k, k_act = jax.random.split(k)
            a = jax.random.uniform(k_act, (num_envs, action_size), minval=-1.0, maxval=1.0)
            return (step(s, a), k), None

        (state, _), _ = jax.lax.scan(body, (state, key), None, length=steps)
        return state.reward

    state = jax.jit(reset)(jax.random.split(jax.random.PRNGKey(0), num_envs))
    _, best = _time_best(run, state, jax.random.PRNGKey(1), repeats=repeats)
    return num_envs * steps / best


def ours_raw(task: str, num_envs: int, steps: int, repeats: int) -> float:
    env = jaxhum.envs.make(task)
    return raw_rate(jax.vmap(env.reset), jax.vmap(env.step), env.action_size, num_envs, steps, repeats)


def brax_raw(num_envs: int, steps: int, repeats: int) -> float:
    from brax import envs as brax_envs
    from brax.envs.wrappers import training

    env = training.wrap(brax_envs.get_environment("humanoid", backend="mjx"), episode_length=1000, action_repeat=1)
    return raw_rate(env.reset, env.step, env.action_size, num_envs, steps, repeats)


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'bf16:ppo.compute_dtype=bfloat16,ppo.num_minibatches=16' -> ('bf16', [overrides]); 'preset:' -> no overrides."""
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise ValueError(
            f"--variant: {text!r} is not NAME:KEY=VALUE,... (e.g. preset: or bf16:ppo.compute_dtype=bfloat16)"
        )
    return name, [item for item in rest.split(",") if item]


def train_rate(
    task: str, num_envs: int, iterations: int, smoke: bool, overrides: list[str] = ()
) -> tuple[float, float]:
    """(steady-state training env steps/s, compile seconds of one iteration) with the task's gpu preset
    and ``overrides`` (KEY=VALUE, as on the experiment's command line)."""
    import importlib

    from jaxhum.config import apply_overrides
    from jaxhum.rl.train import make_train

    config = importlib.import_module(f"experiments.{task}").get_config("cpu" if smoke else "gpu")
    config = apply_overrides(config, list(overrides))
    ppo = dataclasses.replace(config.ppo, num_envs=num_envs)
    ppo.validate()
    env = jaxhum.envs.make(config.env_name, **dict(config.env))
    trainer = make_train(env, ppo, num_iterations=iterations + 1)
    state = trainer.init(jax.random.PRNGKey(0))
    t0 = time.perf_counter()
    state, metrics = trainer.iteration(state)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(iterations):
        state, metrics = trainer.iteration(state)
    jax.block_until_ready(metrics)
    elapsed = time.perf_counter() - t0
    return iterations * ppo.env_steps_per_iteration / elapsed, compile_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run (seconds) printing the same table")
    parser.add_argument("--num-envs", type=int, nargs="+", default=None)
    parser.add_argument("--steps", type=int, default=None, help="batched env steps per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-iterations", type=int, default=None)
    parser.add_argument("--no-train", action="store_true", help="skip the training-rate column")
    parser.add_argument(
        "--tasks",
        nargs="+",
        default=["humanoid_run", "walk"],
        help="tasks to measure; brax's humanoid is the anchor of humanoid_run only",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="NAME:KEY=VALUE,...",
        help="a training-rate variant of the preset (repeatable; default: 'preset:', the preset as is)",
    )
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    try:
        variants = [parse_variant(v) for v in (args.variant or ["preset:"])]
    except ValueError as err:
        parser.error(str(err))
    num_envs = args.num_envs or ([8] if args.smoke else [2048, 8192, 32768])
    steps = args.steps or (10 if args.smoke else 200)
    repeats = 1 if args.smoke else args.repeats
    train_iters = args.train_iterations or (2 if args.smoke else 5)

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    rows = []
    header = (
        f"{'task':>12} | {'envs':>6} | {'brax steps/s':>13} | {'ours steps/s':>13} | {'ours/brax':>9} | "
        f"{'train steps/s':>13} | {'train/raw':>9} | {'iter compile s':>14} variant"
    )
    print(header)
    print("-" * len(header))
    for task in args.tasks:
        for n in num_envs:
            theirs = brax_raw(n, steps, repeats) if task == "humanoid_run" else None
            ours = ours_raw(task, n, steps, repeats)
            row = {
                "task": task,
                "num_envs": n,
                "brax_raw": theirs,
                "ours_raw": ours,
                "raw_ratio": ours / theirs if theirs else None,
            }
            brax_cols = (
                f"{theirs:13.0f} | {ours:13.0f} | {ours / theirs:9.2f}"
                if theirs
                else f"{'-':>13} | {ours:13.0f} | {'-':>9}"
            )
            for name, overrides in [] if args.no_train else variants:
                train, compile_s = train_rate(task, n, train_iters, args.smoke, overrides)
                rows.append(
                    {
                        **row,
                        "variant": name,
                        "overrides": overrides,
                        "train": train,
                        "train_ratio": train / ours,
                        "iteration_compile_s": compile_s,
                    }
                )
                train_cols = f"{train:13.0f} | {train / ours:9.2f} | {compile_s:14.1f}"
                print(f"{task:>12} | {n:6d} | {brax_cols} | {train_cols} {name}", flush=True)
            if args.no_train:
                rows.append(row)
                print(f"{task:>12} | {n:6d} | {brax_cols} | {'-':>13} | {'-':>9} | {'-':>14}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": jax.devices()[0].device_kind, "jax": jax.__version__, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

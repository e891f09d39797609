"""Wall-clock time to eval return 8000: jaxhum's PPO against brax's PPO, in one process.

Three runs per seed, each timed from its own start (compile included) to the first evaluation
whose mean episode return reaches the target:
  1. jaxhum PPO (the gpu preset of experiments.humanoid_run) on humanoid_run;
  2. brax PPO with its published humanoid settings on humanoid_run through `jaxhum.envs.to_brax`;
  3. brax PPO with the same settings on brax's own humanoid (backend 'mjx').
A run that has not reached the target by its step budget reports its best return instead.

brax 0.14.2's trainer calls `jax.device_put_replicated`, which JAX 0.11 removed; this script
(and only this script) puts back a single-host equivalent of that one name when it is missing.

    python benchmarks/train_vs_brax.py --seeds 0,1,2,3,4,10,11 --brax-seeds 0,1,2   # on the GPU
    python benchmarks/train_vs_brax.py --seeds 5,6 --skip-brax                        # ours only
    python benchmarks/train_vs_brax.py --smoke                                        # tiny CPU run

Per run and seed it prints one line, then per run: how many seeds reached the target and the
median time to target over all its seeds, a seed that never reached it counting as infinitely
slow (so the median is finite only when more than half the seeds reached the target), and the
ratio of that median to brax's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxhum

# brax's published humanoid PPO settings (brax/training/learner.py and the brax README).
BRAX_HUMANOID_PPO = dict(
    num_timesteps=50_000_000,
    # brax publishes num_evals=10; 20 evaluations (every 2.5M steps) time brax's arrival at the
    # target more finely, which can only shorten its measured time.
    num_evals=20,
    reward_scaling=0.1,
    episode_length=1000,
    normalize_observations=True,
    action_repeat=1,
    unroll_length=10,
    num_minibatches=32,
    num_updates_per_batch=8,
    discounting=0.97,
    learning_rate=3e-4,
    entropy_cost=1e-3,
    num_envs=2048,
    batch_size=1024,
)
BRAX_SMOKE = dict(
    BRAX_HUMANOID_PPO,
    num_timesteps=4 * 16 * 4 * 2,
    num_evals=2,
    episode_length=16,
    num_envs=16,
    batch_size=16,
    num_minibatches=4,
    num_updates_per_batch=1,
    unroll_length=4,
)


class _TargetReached(Exception):
    """Raised from brax's progress callback to stop a run once the target is reached."""


def _patch_device_put_replicated() -> bool:
    """Restores `jax.device_put_replicated` (removed in JAX 0.11) for brax's trainer; True if patched."""
    if hasattr(jax, "device_put_replicated"):
        return False

    def device_put_replicated(x, devices):
        stacked = jax.tree.map(lambda a: jnp.stack([jnp.asarray(a)] * len(devices)), x)
        mesh = jax.sharding.Mesh(np.array(devices), ("devices",))
        return jax.device_put(stacked, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("devices")))

    jax.device_put_replicated = device_put_replicated
    return True


def run_brax(env, seed: int, target: float, settings: dict, max_seconds: float) -> dict:
    """brax PPO on `env`; returns wall seconds and env steps at the first eval >= target.

    The run is stopped at the first evaluation past `max_seconds` (reported as not reached).
    """
    from brax.training.agents.ppo import train as ppo

    start = time.perf_counter()
    result = {"reached": False, "best": -math.inf, "wall_s": None, "steps": None, "evals": []}

    def progress(num_steps, metrics):
        reward = float(metrics["eval/episode_reward"])
        wall = time.perf_counter() - start
        result["evals"].append((int(num_steps), wall, reward))
        result["best"] = max(result["best"], reward)
        if reward >= target and not result["reached"]:
            result.update(reached=True, wall_s=wall, steps=int(num_steps))
            raise _TargetReached
        if wall > max_seconds:
            raise _TargetReached

    try:
        ppo.train(environment=env, seed=seed, progress_fn=progress, **settings)
    except _TargetReached:
        pass
    result["total_s"] = time.perf_counter() - start
    return result


class _CompileLog:
    """Records JAX's trace, lowering and XLA compile durations (jax.monitoring) during a run.

    Each record is (phase, function name, seconds, seconds from the log's start to the phase's
    end), so a run's startup can be split into its programs, and a compile in the background
    (the runner's precompiles of the iteration and the evaluation) shows up beside init's.
    """

    PHASES = {"/jax/core/compile/jaxpr_trace_duration": "trace",
              "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
              "/jax/core/compile/backend_compile_duration": "compile"}

    def __init__(self, min_seconds: float = 0.2):
        self.min_seconds = min_seconds
        self.records: list[tuple[str, str, float, float]] = []
        self.totals: dict[str, float] = {}

    def _listener(self, event: str, duration: float, **kwargs) -> None:
        phase = self.PHASES.get(event)
        if phase is None:
            return
        self.totals[phase] = self.totals.get(phase, 0.0) + duration
        if duration >= self.min_seconds:
            name = str(kwargs.get("fun_name", "?"))
            self.records.append((phase, name, round(duration, 2), round(time.perf_counter() - self.start, 2)))

    def __enter__(self) -> _CompileLog:
        self.start = time.perf_counter()
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listener)


def run_ours(seed: int, target: float, smoke: bool, overrides: tuple[str, ...] = ()) -> dict:
    """jaxhum PPO (experiments.humanoid_run) stopping at the first eval >= target.

    ``overrides`` (KEY=VALUE, as on the experiment's command line) change the gpu preset.

    The time to target is the run's own `wall_s` at that evaluation, counted from the start of
    `jaxhum.run.loop.train` (trainer build and every compile included; env construction excluded,
    as it is for the brax runs).
    """
    from experiments import humanoid_run

    out = tempfile.mkdtemp(prefix="jaxhum-bench-")
    argv = ["--preset", "cpu" if smoke else "gpu", "--seed", str(seed), "--out", out]
    argv += ["--set", f"stop_at_eval_return={target}", *overrides, "--progress", "none"]
    if smoke:  # a few tiny iterations, one evaluation
        argv += ["--num-envs", "16", "--num-timesteps", "256", "ppo.unroll_length=4", "ppo.num_minibatches=4",
                 "ppo.num_updates_per_batch=1", "ppo.num_eval_envs=4", "env.episode_length=16",
                 "log_every=64", "eval_every=256", "checkpoint_every=256"]
    start = time.perf_counter()
    with _CompileLog() as compiles:
        code = humanoid_run.main(argv)
    total = time.perf_counter() - start
    evals = []
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "eval/episode_reward" in row:
                evals.append((row["step"], row["wall_s"], row["eval/episode_reward"]))
    hit = next((e for e in evals if e[2] >= target), None)
    return {
        "reached": hit is not None,
        "wall_s": hit[1] if hit else None,
        "steps": hit[0] if hit else None,
        "best": max((e[2] for e in evals), default=-math.inf),
        "evals": evals,
        "total_s": total,
        "exit_code": code,
        "compile_s": {k: round(v, 2) for k, v in compiles.totals.items()},
        "compiles": compiles.records,
    }


def parse_seeds(text: str) -> list[int]:
    """'0,1,7' -> [0, 1, 7]; raises ValueError naming the bad entry."""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise ValueError(f"seed list: {part!r} is not a non-negative integer (give e.g. 0,1,7)")
        seeds.append(int(part))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed list: {text!r} repeats a seed")
    return seeds


def median_time(results: list[dict]) -> float:
    """Median wall seconds to target over all seeds; a seed that missed the target counts as inf."""
    if not results:
        return math.nan
    return float(np.median([r["wall_s"] if r["reached"] else math.inf for r in results]))


def summary_table(results: dict[str, list[dict]], seeds: dict[str, list[int]]) -> str:
    """Markdown table: per run the seeds, how many reached the target, median time, ratio to brax."""
    base = median_time(results["brax"]) if results.get("brax") else math.nan
    lines = ["| run | seeds | reached | median s to target | median steps | ratio to brax's median |",
             "|---|---|---|---|---|---|"]
    for name, res in results.items():
        med = median_time(res)
        steps = [r["steps"] if r["reached"] else math.inf for r in res]
        med_steps = float(np.median(steps)) if steps else math.nan
        lines.append(f"| {name} | {','.join(map(str, seeds[name]))} | {sum(r['reached'] for r in res)} of {len(res)} "
                     f"| {med:.1f} | {med_steps:,.0f} | {med / base:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run printing the same table")
    parser.add_argument("--seeds", default="0", help="our seeds, comma-separated (e.g. 0,1,2,3,4,10)")
    parser.add_argument("--brax-seeds", default=None,
                        help="seeds of the brax runs, comma-separated (default: the same as --seeds)")
    parser.add_argument("--skip-brax", action="store_true", help="run ours only (same as --runs ours)")
    parser.add_argument("--target", type=float, default=None, help="eval return to reach (default 8000)")
    parser.add_argument("--runs", default="ours,brax_on_ours,brax", help="comma-separated subset of the runs")
    parser.add_argument("--max-seconds", type=float, default=400.0, help="give up on a brax run after this long")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="config overrides for our runs (e.g. ppo.compute_dtype=bfloat16)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--markdown", default=None, help="also write the summary table to this file")
    args = parser.parse_args(argv)
    try:
        our_seeds = parse_seeds(args.seeds)
        brax_seeds = parse_seeds(args.brax_seeds) if args.brax_seeds is not None else our_seeds
    except ValueError as err:
        parser.error(str(err))
    target = args.target if args.target is not None else (-1e9 if args.smoke else 8000.0)
    settings = BRAX_SMOKE if args.smoke else BRAX_HUMANOID_PPO
    runs = ["ours"] if args.skip_brax else args.runs.split(",")
    for name in runs:
        if name not in ("ours", "brax_on_ours", "brax"):
            parser.error(f"--runs: unknown run {name!r}; known: ours, brax_on_ours, brax")
    seeds = {name: our_seeds if name == "ours" else brax_seeds for name in runs}
    patched = _patch_device_put_replicated() if any(r.startswith("brax") for r in runs) else False
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}, target {target}, "
          f"seeds {seeds}, our overrides {args.overrides}, device_put_replicated patched: {patched}", flush=True)

    results: dict[str, list[dict]] = {r: [] for r in runs}
    for name in runs:
        for seed in seeds[name]:
            if name == "ours":
                res = run_ours(seed, target, args.smoke, tuple(args.overrides))
            elif name == "brax_on_ours":
                env = jaxhum.envs.to_brax(jaxhum.envs.make("humanoid_run"))
                res = run_brax(env, seed, target, settings, args.max_seconds)
            else:
                from brax import envs as brax_envs

                brax_env = brax_envs.get_environment("humanoid", backend="mjx")
                res = run_brax(brax_env, seed, target, settings, args.max_seconds)
            res["seed"] = seed
            results[name].append(res)
            print(
                f"seed {seed} {name:13s} reached={res['reached']} wall_s={res['wall_s']} "
                f"steps={res['steps']} best={res['best']:.1f} total_s={res['total_s']:.1f}",
                flush=True,
            )
            for phase, fun, seconds, end in res.get("compiles", []):
                print(f"    {phase:7s} {seconds:6.2f} s, ended at {end:6.1f} s: {fun}", flush=True)

    table = summary_table(results, seeds)
    print()
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}, target {target}\n\n{table}\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": jax.devices()[0].device_kind,
                    "jax": jax.__version__,
                    "target": target,
                    "seeds": seeds,
                    "overrides": args.overrides,
                    "results": results,
                    "median_wall_s": {n: median_time(r) for n, r in results.items()},
                },
                f,
                indent=2,
                default=str,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

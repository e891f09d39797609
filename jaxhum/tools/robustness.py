"""Robustness sweep of a trained run: `python -m jaxhum.robustness RUN_DIR [--friction LIST]
[--mass-scale LIST] [--push LIST] [--push-every S] [--episodes N] [--seed S] [--best] [--out DIR]`.

Runs the run's deterministic policy for N episodes in every cell of the grid friction x mass
scale x push magnitude and writes `robustness.json` (success rate, forward velocity, episode
length per cell) and `robustness.png` (success-rate heatmaps, friction x mass scale, one panel per
push magnitude) into `--out` (default RUN_DIR/robustness). Each cell fixes its values with
zero-width randomization ranges: friction (floor and soles) = f, every body's mass and inertia
scaled by m, a kick of p m/s every `--push-every` seconds (none for p = 0); everything else of
the task's randomization is off, whatever the run trained with. The whole grid is one compile:
the cell's values are arguments of the jitted evaluation.

Bad input stops before anything is compiled or written: one line `error: <field>: <constraint>`
on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from jaxhum.run import checkpoint
from jaxhum.run.cli import ArgumentParser, UsageError, run_dir_arg

RESULT_FILE = "robustness.json"
HEATMAP_FILE = "robustness.png"


def float_list(field: str, text: str, minimum: float, strict: bool = False) -> tuple[float, ...]:
    """Comma-separated finite numbers >= minimum (> when strict), or a UsageError naming `field`."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{field}: expected comma-separated numbers, got {text!r}") from None
    bad = [v for v in values if not math.isfinite(v) or v < minimum or (strict and v == minimum)]
    if not values or bad:
        op = ">" if strict else ">="
        raise UsageError(f"{field}: expected comma-separated finite numbers {op} {minimum}, got {text!r}")
    return values


def cell_config(base: Any, friction: Any, mass_scale: Any, push: Any, push_every: float) -> Any:
    """The task config of one cell: zero-width ranges at the cell's values, the rest off.

    Pushes stay on in every cell (a push of 0 m/s changes nothing), so all cells have the same
    structure and the values may be JAX arrays traced by `sweep`.
    """
    from jaxhum.envs.terms.randomization import RandomizationConfig

    rand = RandomizationConfig(friction=(friction, friction), mass_scale=(mass_scale, mass_scale),
                               push_interval=(push_every, push_every), push_velocity=(push, push))
    return dataclasses.replace(base, randomization=rand)


def sweep(run: checkpoint.LoadedRun, frictions: Sequence[float], mass_scales: Sequence[float],
          pushes: Sequence[float], push_every: float, episodes: int, seed: int) -> list[dict[str, Any]]:
    """One result dict per cell (friction, mass_scale, push, success_rate, forward_velocity, ...).

    One compile for the whole grid: the task is built inside the jitted evaluation with the
    cell's values as traced arguments (the values were checked on the host by `parse_args`).
    """
    import jax
    import jax.numpy as jnp

    from jaxhum import envs
    from jaxhum.tools import episode_stats

    factory = envs.REGISTRY[run.config.env_name].factory
    base = run.env.config
    host_env = factory(cell_config(base, 1.0, 1.0, 0.0, push_every))  # dt and masses

    @jax.jit
    def evaluate_cell(params: Any, key: jax.Array, f: jax.Array, m: jax.Array, p: jax.Array) -> Any:
        env = factory(cell_config(base, f, m, p, push_every))
        return episode_stats.make_episode_evaluator(env, run.act, episodes)(params, key)

    cells = []
    for f, m, p in itertools.product(frictions, mass_scales, pushes):
        values = (jnp.float32(f), jnp.float32(m), jnp.float32(p))
        stats = evaluate_cell(run.params, jax.random.key(seed), *values)
        s = episode_stats.summarize(stats, dt=host_env.dt, mass=episode_stats.total_mass(host_env) * m)
        cells.append({"friction": f, "mass_scale": m, "push": p, "success_rate": s["success_rate"],
                      "forward_velocity": s["forward_velocity"], "episode_length": s["episode_length"],
                      "episode_return": s["episode_return"], "nonfinite_episodes": s["nonfinite_episodes"]})
    return cells


def heatmap(report: dict[str, Any], out: pathlib.Path) -> None:
    """Success rate per (friction, mass scale), one panel per push magnitude, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fr, ms, pu = report["friction"], report["mass_scale"], report["push"]
    table = {(c["friction"], c["mass_scale"], c["push"]): c for c in report["cells"]}
    fig, axes = plt.subplots(1, len(pu), figsize=(1.5 + (0.8 * len(fr) + 0.6) * len(pu), 1.8 + 0.55 * len(ms)),
                             squeeze=False, layout="constrained")
    for n, (ax, p) in enumerate(zip(axes[0], pu)):
        grid = np.array([[table[(f, m, p)]["success_rate"] for f in fr] for m in ms])
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="RdYlGn", origin="lower", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            vel = table[(fr[j], ms[i], p)]["forward_velocity"]
            ax.text(j, i, f"{v:.2f}\n{vel:.2f} m/s", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(fr)), [f"{f:g}" for f in fr])
        ax.set_yticks(range(len(ms)), [f"{m:g}" for m in ms])
        ax.set_xlabel("friction")
        if n == 0:
            ax.set_ylabel("mass scale")
        ax.set_title(f"push {p:g} m/s")
    fig.colorbar(image, ax=axes[0].tolist(), label="success rate")
    fig.suptitle(f"{report['task']}: {report['run_dir']} (step {report['checkpoint_step']})", fontsize=8)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m jaxhum.robustness", description=__doc__.splitlines()[0],
                            error_prefix="arguments: ")
    parser.add_argument("run_dir", type=str)
    parser.add_argument("--friction", type=str, default="0.4,0.7,1.0")
    parser.add_argument("--mass-scale", type=str, default="0.9,1.0,1.1")
    parser.add_argument("--push", type=str, default="0,0.5,1.0,1.5", help="kick magnitudes (m/s)")
    parser.add_argument("--push-every", type=float, default=3.0, help="seconds between kicks")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--best", action="store_true", help="use best_checkpoint/ instead of the newest")
    parser.add_argument("--out", type=str, default=None, help="output directory (default RUN_DIR/robustness)")
    args = parser.parse_args(argv)
    args.run_dir = run_dir_arg(args.run_dir)
    args.friction = float_list("friction", args.friction, 0.0)
    args.mass_scale = float_list("mass_scale", args.mass_scale, 0.0, strict=True)
    args.push = float_list("push", args.push, 0.0)
    if not (math.isfinite(args.push_every) and args.push_every > 0):
        raise UsageError(f"push_every: must be a finite number > 0, got {args.push_every}")
    if args.episodes <= 0:
        raise UsageError(f"episodes: must be a positive integer, got {args.episodes}")
    if args.seed < 0:
        raise UsageError(f"seed: must be >= 0, got {args.seed}")
    args.out = pathlib.Path(args.out) if args.out else args.run_dir / "robustness"
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"out: {args.out} exists and is not a directory")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("out: the heatmap needs matplotlib: pip install 'jaxhum[render]'") from None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from jaxhum.tools.memory import use_memory_on_demand

    use_memory_on_demand()  # before any device use: JAX would take 75% of the GPU

    try:
        args = parse_args(argv)
        run = checkpoint.load_run(args.run_dir, best=args.best, compile_cache=True)
        if not hasattr(run.env.config, "randomization"):
            raise UsageError(f"run_dir: task {run.config.env_name!r} has no randomization settings to sweep")
    except (UsageError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cells = sweep(run, args.friction, args.mass_scale, args.push, args.push_every, args.episodes, args.seed)
    report = {"run_dir": str(run.run_dir), "task": run.config.env_name, "checkpoint_step": run.step,
              "episodes": args.episodes, "seed": args.seed, "push_every_s": args.push_every,
              "friction": list(args.friction), "mass_scale": list(args.mass_scale), "push": list(args.push),
              "cells": cells}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / RESULT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    heatmap(report, args.out / HEATMAP_FILE)
    for c in cells:
        print(f"friction {c['friction']:<5g} mass x{c['mass_scale']:<5g} push {c['push']:<4g} m/s: "
              f"success {c['success_rate']:.2f}, velocity {c['forward_velocity']:.3f} m/s")
    print(f"wrote {args.out / RESULT_FILE} and {args.out / HEATMAP_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

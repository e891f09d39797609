"""Evaluate a trained run: `python -m jaxhum.evaluate RUN_DIR [--episodes N] [--seed S] [--best] [--video FILE.mp4]`.

Runs the deterministic policy (tanh of the Gaussian mean) for N episodes on the run's task, writes
`evaluation.json` into the run directory and prints a table: forward velocity, success rate,
mechanical work per metre, cost of transport, episode return and length (and tracking errors for
command tasks); see `jaxhum.tools.episode_stats` for the definitions. `--video` also renders one episode
(seed S) to an MP4 with a camera that tracks the robot, at the control rate.

Bad input stops before anything is compiled or written: one line `error: <field>: <constraint>`
on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from jaxhum.run import checkpoint
from jaxhum.run.cli import ArgumentParser, UsageError, run_dir_arg
from jaxhum.tools import render

EVALUATION_FILE = "evaluation.json"


def evaluate_run(run: checkpoint.LoadedRun, episodes: int, seed: int) -> dict[str, Any]:
    """Evaluates a loaded run on `episodes` episodes reset from `seed`; returns the report dict."""
    import jax

    from jaxhum.tools import episode_stats

    evaluate = jax.jit(episode_stats.make_episode_evaluator(run.env, run.act, episodes))
    stats = evaluate(run.params, jax.random.key(seed))
    figures = episode_stats.summarize(
        stats, dt=run.env.dt, mass=episode_stats.total_mass(run.env),
        tracking_bounds=getattr(run.env, "tracking_bounds", None),
    )
    return {"run_dir": str(run.run_dir), "task": run.config.env_name, "checkpoint_step": run.step,
            "seed": seed, "control_dt": run.env.dt, **figures}


ROWS = (
    ("forward velocity", "forward_velocity", "m/s"),
    ("success rate", "success_rate", ""),
    ("fall rate", "fall_rate", ""),
    ("work per metre", "work_per_metre", "J/m"),
    ("cost of transport", "cost_of_transport", ""),
    ("episode return", "episode_return", ""),
    ("episode length", "episode_length", "steps"),
)


def format_table(report: dict[str, Any]) -> str:
    """The report as an aligned two-column table (tracking errors appended when present)."""
    rows = list(ROWS) + [(k, k, "") for k in sorted(report) if k.startswith("tracking/")]
    lines = [
        f"{report['task']} checkpoint {report['checkpoint_step']}, {report['episodes']} episodes, seed {report['seed']}"
    ]
    for label, key, unit in rows:
        value = report.get(key)
        text = "n/a (no forward progress)" if value is None else f"{value:.4g} {unit}".rstrip()
        if key in ("episode_return", "episode_length"):
            text = f"{value:.4g} +- {report[key + '_std']:.3g} {unit}".rstrip()
        lines.append(f"  {label:<22} {text}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m jaxhum.evaluate", description=__doc__.splitlines()[0], error_prefix="arguments: "
    )
    parser.add_argument("run_dir", type=str)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--best", action="store_true", help="use best_checkpoint/ instead of the newest")
    parser.add_argument("--video", type=str, default=None, help="also render one episode to this .mp4")
    args = parser.parse_args(argv)
    args.run_dir = run_dir_arg(args.run_dir)
    if args.episodes <= 0:
        raise UsageError(f"episodes: must be a positive integer, got {args.episodes}")
    if args.seed < 0:
        raise UsageError(f"seed: must be >= 0, got {args.seed}")
    if args.video is not None:
        args.video = pathlib.Path(args.video)
        render.check_video_path(args.video)
        render.check_gl()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from jaxhum.tools.memory import use_memory_on_demand

    use_memory_on_demand()  # before any device use: JAX would take 75% of the GPU

    try:
        args = parse_args(argv)
        run = checkpoint.load_run(args.run_dir, best=args.best, compile_cache=True)
    except (UsageError, render.RenderError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = evaluate_run(run, args.episodes, args.seed)
    if report["nonfinite_episodes"]:
        print(f"warning: {report['nonfinite_episodes']} episode(s) hit NaN/inf and were cut short", file=sys.stderr)
    out = args.run_dir / EVALUATION_FILE
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    print(f"wrote {out}")
    if args.video is not None:
        frames = render.record_episode(run, args.seed)
        render.write_video(run.env.sim.mj_model, frames, args.video, fps=1.0 / run.env.dt)
        print(f"wrote {args.video} ({len(frames)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

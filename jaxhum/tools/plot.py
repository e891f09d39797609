"""Learning curves of one or more runs: `python -m jaxhum.plot RUN_DIR [RUN_DIR ...] [--out FILE.png]`.

Reads each run's metrics.jsonl and draws, runs side by side (one colour per run) against env
steps: the evaluation return, the evaluation episode length, and one panel per reward term
(`eval/reward/<term>`, the episode sum; runs without evaluations fall back to `train/...`).
Matplotlib with the Agg backend (no display needed). Default output: plot.png in the first run.

Bad input: one line `error: <field>: <constraint>` on stderr, exit 2, nothing written.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

METRICS_FILE = "metrics.jsonl"
PANELS = (("eval/episode_reward", "train/episode_reward", "episode return"),
          ("eval/episode_length", "train/episode_length", "episode length"))
TERM_PREFIXES = ("eval/reward/", "train/reward/")


def read_metrics(run_dir: pathlib.Path) -> list[dict[str, Any]]:
    """The log points of a run's metrics.jsonl (a torn last line, from a killed run, is skipped)."""
    points = []
    for line in (run_dir / METRICS_FILE).read_text().splitlines():
        try:
            points.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return points


def series(points: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one metric over the points that have it (finite values only)."""
    pairs = [(p["step"], p[key]) for p in points if isinstance(p.get(key), (int, float)) and math.isfinite(p[key])]
    return [s for s, _ in pairs], [v for _, v in pairs]


def panels(runs: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    """(title, metric key) of every panel to draw, given every run's points."""
    keys = {k for points in runs.values() for p in points for k in p}
    out = []
    for eval_key, train_key, title in PANELS:
        key = eval_key if eval_key in keys else train_key
        if key in keys:
            out.append((title, key))
    for prefix in TERM_PREFIXES:
        terms = sorted(k for k in keys if k.startswith(prefix))
        if terms:
            out += [(f"reward term {k[len(prefix):]}", k) for k in terms]
            break
    return out


def plot(run_dirs: Sequence[pathlib.Path], out: pathlib.Path) -> list[str]:
    """Draws the learning curves of `run_dirs` into `out` (PNG); returns the metric keys drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {str(d): read_metrics(d) for d in run_dirs}
    chosen = panels(runs)
    if not chosen:
        raise ValueError(f"run_dirs: no episode metrics in {METRICS_FILE} of {', '.join(runs)}")
    cols = min(3, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, (title, key) in zip(axes.flat, chosen):
        for name, points in runs.items():
            steps, values = series(points, key)
            ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=pathlib.Path(name).name)
        ax.set_title(f"{title} ({key})", fontsize=9)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(chosen):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return [key for _, key in chosen]


def main(argv: Sequence[str] | None = None) -> int:
    from jaxhum.run.cli import ArgumentParser, UsageError

    parser = ArgumentParser(prog="python -m jaxhum.plot", description=__doc__.splitlines()[0],
                            error_prefix="arguments: ")
    parser.add_argument("run_dirs", nargs="+", type=str)
    parser.add_argument("--out", type=str, default=None)
    try:
        args = parser.parse_args(argv)
        run_dirs = [pathlib.Path(d) for d in args.run_dirs]
        for d in run_dirs:
            if not (d / METRICS_FILE).is_file():
                raise UsageError(f"run_dirs: no {METRICS_FILE} in {d}")
        out = pathlib.Path(args.out) if args.out else run_dirs[0] / "plot.png"
        if out.suffix.lower() != ".png":
            raise UsageError(f"out: must be a .png file, got {out}")
        if not out.parent.absolute().is_dir():
            raise UsageError(f"out: directory {out.parent} does not exist")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("out: plotting needs matplotlib: pip install 'jaxhum[render]'") from None
        plot(run_dirs, out)
    except (UsageError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Learning curves of one or more runs: `python -m jaxhum.plot RUN_DIR [RUN_DIR ...] [--out FILE.png]`.

Reads each run's metrics.jsonl and draws, runs side by side (one colour per run) against env
steps: the episode return, the episode length, and one panel per reward term
(`eval/reward/<term>`, the episode sum). A panel holds a run's evaluations and, where the run
logged them, its training figures (`train/...`, every row that has them, also when the run
evaluated only at its end); a few evaluations are drawn as markers, not as a curve through them.
Env steps are labelled in engineering notation (100k, 1M). Matplotlib with the Agg backend (no
display needed). Default output: plot.png in the first run.

`panels(runs)` says what is drawn (pure: points in, curves out); `figure` draws it.

Bad input: one line `error: <field>: <constraint>` on stderr, exit 2, nothing written.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

METRICS_FILE = "metrics.jsonl"
# (title, evaluation key, training key) of the fixed panels.
PANELS = (("episode return", "eval/episode_reward", "train/episode_reward"),
          ("episode length", "eval/episode_length", "train/episode_length"))
TERM_PREFIXES = ("eval/reward/", "train/reward/")
FEW_EVALS = 8  # fewer evaluations than this are drawn as markers: samples, not a curve
# A row's train/episode_* figures are placeholders (0) when no episode ended in its iteration.
EPISODES_FINISHED = "train/episodes_finished"


class Curve(NamedTuple):
    """One run's metric in one panel: `steps` (env steps) and `values`, drawn as a line or as markers."""

    run: str  # the run directory's name (legend label; one colour per run)
    key: str  # the metric, e.g. 'eval/episode_reward'
    steps: list[float]
    values: list[float]
    markers: bool  # True: markers only (a few points, or one); False: a line


class Panel(NamedTuple):
    """One panel: its title, its metric (the evaluation's when any run has it) and its curves."""

    title: str
    key: str
    curves: list[Curve]


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
    """(steps, values) of one metric over the points that have it (finite values only; a
    train/episode_* value of a row where no episode finished is a placeholder and skipped)."""
    def has(p: dict[str, Any]) -> bool:
        value = p.get(key)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return not (key.startswith("train/episode_") and p.get(EPISODES_FINISHED) == 0)

    pairs = [(p["step"], p[key]) for p in points if has(p)]
    return [s for s, _ in pairs], [v for _, v in pairs]


def _curve(run: str, points: list[dict[str, Any]], key: str) -> Curve | None:
    steps, values = series(points, key)
    if not steps:
        return None
    few = len(steps) < FEW_EVALS if key.startswith("eval/") else len(steps) < 2
    return Curve(run, key, steps, values, markers=few)


def panels(runs: dict[str, list[dict[str, Any]]]) -> list[Panel]:
    """Every panel to draw, given every run's points ({run name: metrics rows}).

    The fixed panels (return, length) hold each run's evaluation and training curves; then one
    panel per reward term, from the evaluations (from training when no run evaluated them).
    """
    keys = {k for points in runs.values() for p in points for k in p}
    chosen = [(title, (eval_key, train_key)) for title, eval_key, train_key in PANELS
              if eval_key in keys or train_key in keys]
    for prefix in TERM_PREFIXES:
        terms = sorted(k for k in keys if k.startswith(prefix))
        if terms:
            chosen += [(f"reward term {k[len(prefix):]}", (k,)) for k in terms]
            break
    out = []
    for title, candidates in chosen:
        curves = [_curve(run, points, key) for key in candidates for run, points in runs.items()]
        curves = [c for c in curves if c is not None]
        if curves:
            out.append(Panel(title, next(k for k in candidates if k in keys), curves))
    return out


def figure(drawn: Sequence[Panel]) -> Any:
    """A matplotlib Figure of the panels, three to a row (the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    cols = min(3, len(drawn))
    rows = math.ceil(len(drawn) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    names = list(dict.fromkeys(c.run for panel in drawn for c in panel.curves))
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    for ax, panel in zip(axes.flat, drawn):
        for c in panel.curves:
            kind = c.key.split("/")[0]  # 'eval' or 'train'
            if c.markers:
                style: dict[str, Any] = {"linestyle": "none", "marker": "o"}
            else:
                style = {"marker": "." if len(c.steps) < 30 else None}
            if kind == "train":
                style.update(alpha=0.45, linewidth=1.0)
            ax.plot(c.steps, c.values, color=colours[c.run], label=f"{pathlib.Path(c.run).name} {kind}", **style)
        ax.set_title(f"{panel.title} ({panel.key})", fontsize=9)
        ax.set_xlabel("env steps")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 100k, 1M: a 500k-step run's labels fit
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(drawn):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot(run_dirs: Sequence[pathlib.Path], out: pathlib.Path) -> list[str]:
    """Draws the learning curves of `run_dirs` into `out` (PNG); returns each panel's metric key."""
    runs = {str(d): read_metrics(d) for d in run_dirs}
    drawn = panels(runs)
    if not drawn:
        raise ValueError(f"run_dirs: no episode metrics in {METRICS_FILE} of {', '.join(runs)}")
    fig = figure(drawn)
    import matplotlib.pyplot as plt  # after `figure` chose the Agg backend

    fig.savefig(out, dpi=100)
    plt.close(fig)
    return [panel.key for panel in drawn]


def main(argv: Sequence[str] | None = None) -> int:
    from jaxhum.run.cli import ArgumentParser, UsageError
    from jaxhum.tools.memory import use_memory_on_demand

    use_memory_on_demand()  # before any device use: JAX would take 75% of the GPU

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

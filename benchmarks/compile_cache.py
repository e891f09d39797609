"""Compile paid once: the first and the second run of one config, each a process of its own sharing
a fresh persistent compilation cache (`RunConfig.compile_cache`).

For each run: the time from process start to the end of its first training iteration (the
runner's `phase: training` line, read as it arrives), to its first evaluation reaching `--target`
(when given: the log point's `wall_s` plus the run's start-up before its clock began), and to
the process's exit; the programs the cache loaded and saved (as the run reports them); and
whether the two runs' metrics (timings aside) are identical. Appends one record (date, machine,
device kind, jax version, commit, the command and the figures) to `--out`, a JSON list.

    python benchmarks/compile_cache.py --experiment joystick --preset cpu \\
        --set num_timesteps=20000 log_every=5000 eval_every=10000      # a small run on a laptop CPU
    python benchmarks/compile_cache.py --experiment joystick --preset gpu --target 25   # on the GPU

The parent process never imports JAX (so it claims no GPU memory); the device kind comes from a
short subprocess.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxhum.run import log as runlog  # noqa: E402  (no JAX import: jaxhum.run.log is plain Python)

TIMING = ("wall_s", "train/steps_per_second")


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def _device(env: dict[str, str]) -> dict[str, str]:
    """Device kind, platform and jax version as a run would see them (asked in a subprocess)."""
    code = "import jax; d = jax.devices()[0]; print(d.platform, jax.__version__, d.device_kind, sep='|')"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
                         capture_output=True, text=True, check=False)
    platform, version, kind = (out.stdout.strip().splitlines() or ["?|?|?"])[-1].split("|", 2)
    return {"platform": platform, "jax": version, "device_kind": kind}


def _timed_run(cmd: list[str], env: dict[str, str], echo: bool) -> dict:
    """Runs `cmd`, stamping each output line with its time from the process's start."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append((time.monotonic() - start, line.rstrip("\n")))
            if echo:
                print(f"  [{lines[-1][0]:7.1f} s] {lines[-1][1]}", flush=True)

    reader = threading.Thread(target=read)
    reader.start()
    code = proc.wait()
    reader.join()
    return {"exit_code": code, "total_s": round(time.monotonic() - start, 2), "lines": lines}


def _figures(run: dict, run_dir: pathlib.Path, target: float | None) -> dict:
    """The record of one run from its stamped output and its metrics.jsonl."""
    training = [(t, line) for t, line in run["lines"] if (runlog.parse_phase(line) or ("",))[0] == "training"]
    first_s = training[0][0] if training else None
    counts = training[0][1].rsplit(": ", 1)[-1].rstrip(")") if training else ""
    rows = runlog.read_metrics(run_dir)
    reached = None
    if target is not None:
        hit = next((r for r in rows if (r.get("eval/episode_reward") or float("-inf")) >= target), None)
        if hit is not None and first_s is not None and rows:
            # wall_s counts from the runner's start (after imports and the config check): shift it
            # by that start-up, read off the first log point's arrival in the output.
            reached = hit["wall_s"] + _startup_s(run, rows)
    evals = [r["eval/episode_reward"] for r in rows if r.get("eval/episode_reward") is not None]
    return {
        "exit_code": run["exit_code"],
        "time_to_first_iteration_s": round(first_s, 2) if first_s is not None else None,
        "time_to_target_s": round(reached, 2) if reached is not None else None,
        "total_wall_s": run["total_s"],
        "cache": counts,
        "final_eval_return": evals[-1] if evals else None,
        "steps": rows[-1]["step"] if rows else 0,
    }


def _startup_s(run: dict, rows: list[dict]) -> float:
    """Seconds from process start to the runner's clock start: the first log point's line time
    (from the output) minus its wall_s."""
    first_step = rows[0]["step"]
    for t, line in run["lines"]:
        if line.startswith(f"step {first_step}/"):
            return max(t - rows[0]["wall_s"], 0.0)
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="joystick", help="experiments.<NAME> (default joystick)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="config overrides for both runs (e.g. num_timesteps=20000)")
    parser.add_argument("--target", type=float, default=None, help="eval return whose first reach is timed")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "benchmarks" / "results" / "compile_cache.json")
    parser.add_argument("--machine", default="", help="a description of the machine for the record")
    parser.add_argument("--quiet", action="store_true", help="do not echo the runs' output")
    args = parser.parse_args(argv)

    env = {**os.environ, "CI": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the fresh folder below, given as the config field
    with tempfile.TemporaryDirectory(prefix="jaxhum-compile-cache-") as tmp:
        cache = pathlib.Path(tmp) / "xla"
        runs, figures = [], {}
        for name in ("first", "second"):
            out = pathlib.Path(tmp) / name
            cmd = [sys.executable, "-m", f"experiments.{args.experiment}", "--preset", args.preset, "--progress",
                   "lines", "--out", str(out), f"compile_cache={cache}", *args.overrides]
            print(f"{name} run: {' '.join(cmd[1:])}", flush=True)
            run = _timed_run(cmd, env, echo=not args.quiet)
            runs.append([{k: v for k, v in r.items() if k not in TIMING} for r in runlog.read_metrics(out)])
            figures[name] = _figures(run, out, args.target)
            if run["exit_code"] != 0:
                print(f"error: the {name} run exited with {run['exit_code']}", file=sys.stderr)
                break
        entries = len([p for p in cache.iterdir() if p.name.endswith("-cache")]) if cache.is_dir() else 0
    first, second = figures.get("first", {}), figures.get("second", {})
    speedup = None
    if first.get("time_to_first_iteration_s") and second.get("time_to_first_iteration_s"):
        speedup = round(first["time_to_first_iteration_s"] / second["time_to_first_iteration_s"], 2)
    record = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": args.machine or f"{os.cpu_count()}-core host",
        **_device(env),
        "commit": _git("rev-parse", "HEAD") or None,
        "uncommitted_changes": bool(_git("status", "--porcelain", "--", "jaxhum")),
        "experiment": args.experiment, "preset": args.preset, "overrides": args.overrides, "target": args.target,
        "first": first, "second": second, "cache_entries": entries,
        "first_iteration_speedup": speedup,
        "identical_metrics": len(runs) == 2 and runs[0] == runs[1],
    }
    previous = json.loads(args.out.read_text()) if args.out.exists() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps([*previous, record], indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("first", "second", "first_iteration_speedup", "identical_metrics")},
                     indent=1))
    print(f"wrote {args.out}")
    return 0 if len(runs) == 2 and all(f.get("exit_code") == 0 for f in figures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

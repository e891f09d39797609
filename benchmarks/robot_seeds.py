"""Trains a robot task (`walk` or `joystick`, gpu preset) on several seeds and reports each policy.

Each seed is a separate `python -m experiments.TASK` process; `--parallel N` runs N of them at
once on the same GPU (each then gets 1/N of the GPU memory), which shortens the session's
device time but makes each run slower than it would be alone: the table says which was used.
Per seed it reads the run's metrics.jsonl and reports every evaluation (deterministic policy,
the preset's eval envs, each env's first episode) and the wall time (process start, compile
included) at which an evaluation first met the task's target, and the final evaluation:
  walk      x-velocity >= 1 m/s with no falls (issue 8);
  joystick  mean |vx error| <= 0.15 m/s, mean |yaw-rate error| <= 0.2 rad/s, fall rate <= 2% (issue 9). With `--after`,
each finished run is then evaluated (`python -m jaxhum.evaluate`, 128 episodes: speed, success,
energy) and checked sim-to-sim (`python -m jaxhum.sim2sim`, 16 episodes in native MuJoCo, which
also exports the policy to RUN_DIR/export), and both reports join the summary.

    python benchmarks/robot_seeds.py --task walk --seeds 0 1 2 --parallel 3 --out-dir runs/walk_seeds
    python benchmarks/robot_seeds.py --task joystick --seeds 3 4 --parallel 2 --after
    python benchmarks/robot_seeds.py --task joystick --preset gpu_randomized --seeds 6 --robustness
    python benchmarks/robot_seeds.py --task walk --seeds 0 --smoke     # tiny CPU run of the same thing

Prints a Markdown table and writes `summary.json` into --out-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

# Per task: the evaluation columns reported, and the target an evaluation must meet.
COLUMNS = {
    "walk": ("eval/x_velocity", "eval/fall_rate", "eval/episode_length", "eval/episode_reward"),
    "joystick": ("eval/tracking_error_vx", "eval/tracking_error_yaw", "eval/fall_rate",
                 "eval/episode_length", "eval/episode_reward"),
}
TARGETS = {
    "walk": lambda e: e["eval/x_velocity"] >= 1.0 and e["eval/fall_rate"] == 0.0,
    "joystick": lambda e: (e["eval/tracking_error_vx"] <= 0.15 and e["eval/tracking_error_yaw"] <= 0.2
                           and e["eval/fall_rate"] <= 0.02),
}
SMOKE_OVERRIDES = ["ppo.num_envs=8", "ppo.unroll_length=5", "ppo.num_minibatches=2", "ppo.num_updates_per_batch=1",
                   "ppo.num_eval_envs=4", "env.episode_seconds=0.4", "num_timesteps=80", "eval_every=40",
                   "log_every=40", "checkpoint_every=80"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TARGETS), default="walk")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", default="gpu", help="the experiment's preset (gpu, or e.g. gpu_randomized)")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once on the one GPU")
    parser.add_argument("--out-dir", default="runs/robot_seeds")
    parser.add_argument("--after", action="store_true", help="evaluate and sim2sim each trained run")
    parser.add_argument("--robustness", action="store_true",
                        help="sweep each trained run's robustness grid (python -m jaxhum.robustness)")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run (cpu preset, a few steps)")
    parser.add_argument("overrides", nargs="*", metavar="FIELD=VALUE", help="passed to every run")
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error(f"--parallel: must be >= 1, got {args.parallel}")
    return args


def launch(seed: int, run_dir: pathlib.Path, args: argparse.Namespace) -> subprocess.Popen:
    """Starts one training process; its output goes to run_dir/../seed<seed>.log."""
    cmd = [sys.executable, "-m", f"experiments.{args.task}", "--preset", "cpu" if args.smoke else args.preset,
           "--seed", str(seed), "--out", str(run_dir), "--progress", "lines",
           *(SMOKE_OVERRIDES if args.smoke else []), *args.overrides]
    env = dict(os.environ)
    if args.parallel > 1:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / args.parallel:.2f}"
    log = open(run_dir.parent / f"seed{seed}.log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def launch_after(seed: int, run_dir: pathlib.Path, args: argparse.Namespace) -> subprocess.Popen:
    """Evaluates a trained run and runs it sim-to-sim (`--after`), then sweeps its robustness
    grid (`--robustness`, the defaults of `python -m jaxhum.robustness`); output appended to the
    seed's log."""
    episodes = (4, 2, 2) if args.smoke else (128, 16, 32)
    py = sys.executable
    steps = []
    if args.after:
        steps += [f"{py} -m jaxhum.evaluate {run_dir} --episodes {episodes[0]}",
                  f"{py} -m jaxhum.sim2sim {run_dir} --episodes {episodes[1]}"]
    if args.robustness:
        steps.append(f"{py} -m jaxhum.robustness {run_dir} --episodes {episodes[2]}")
    env = dict(os.environ)
    if args.parallel > 1:  # other runs may still hold their share of the GPU memory
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / args.parallel:.2f}"
    log = open(run_dir.parent / f"seed{seed}.log", "a")
    return subprocess.Popen(["sh", "-c", " && ".join(steps)], stdout=log, stderr=subprocess.STDOUT, env=env)


def read_json(path: pathlib.Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def summarize(task: str, seed: int, run_dir: pathlib.Path, wall_s: float, returncode: int) -> dict:
    """Evaluations of one run from its metrics.jsonl."""
    evals = []
    path = run_dir / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        row = json.loads(line)
        if "eval/episode_reward" in row:
            evals.append({k: row.get(k, float("nan")) for k in ("step", "wall_s", *COLUMNS[task])})
    met = [e for e in evals if TARGETS[task](e)]
    return {"seed": seed, "returncode": returncode, "process_wall_s": round(wall_s, 1), "evals": evals,
            "final": evals[-1] if evals else None, "first_target_met": met[0] if met else None,
            "evaluation": read_json(run_dir / "evaluation.json"), "sim2sim": read_json(run_dir / "sim2sim.json"),
            "robustness": read_json(run_dir / "robustness" / "robustness.json")}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pending, running, after, done = list(args.seeds), {}, {}, {}
    while pending or running or after:
        while pending and len(running) < args.parallel:
            seed = pending.pop(0)
            run_dir = out / f"{args.task}_s{seed}"
            running[seed] = (launch(seed, run_dir, args), time.perf_counter(), run_dir)
        time.sleep(1.0)
        for seed, (proc, start, run_dir) in list(running.items()):
            if proc.poll() is not None:
                done[seed] = (run_dir, time.perf_counter() - start, proc.returncode)
                del running[seed]
                if (args.after or args.robustness) and proc.returncode == 0:
                    after[seed] = launch_after(seed, run_dir, args)
        for seed, proc in list(after.items()):
            if proc.poll() is not None:
                del after[seed]
    results = [summarize(args.task, seed, *done[seed]) for seed in sorted(done)]
    (out / "summary.json").write_text(json.dumps({"task": args.task, "parallel": args.parallel, "runs": results},
                                                 indent=1))
    columns = COLUMNS[args.task]
    print(f"| seed | rc | {' | '.join('final ' + c.removeprefix('eval/') for c in columns)} | "
          f"target met at (steps, wall s) | process wall s |  ({args.task}, parallel={args.parallel})")
    print("| ---: | ---: |" + " ---: |" * len(columns) + " --- | ---: |")
    for r in results:
        f, m = r["final"] or {}, r["first_target_met"]
        met = f"{m['step'] / 1e6:.1f}M, {m['wall_s']:.0f} s" if m else "not met"
        values = " | ".join(f"{f.get(c, float('nan')):.3f}" for c in columns)
        print(f"| {r['seed']} | {r['returncode']} | {values} | {met} | {r['process_wall_s']:.0f} |")
    for r in results:
        ev, s2s = r["evaluation"], r["sim2sim"]
        if ev:
            scalars = {k: v for k, v in ev.items() if not isinstance(v, (dict, list))}
            print(f"seed {r['seed']} evaluation: " + json.dumps(scalars))
        if s2s:
            print(f"seed {r['seed']} sim2sim: mujoco {json.dumps(s2s['mujoco'])} mjx {json.dumps(s2s['mjx'])}")
        for cell in (r["robustness"] or {}).get("cells", []):
            print(f"seed {r['seed']} robustness: " + json.dumps(cell))
    return max(r["returncode"] for r in results)


if __name__ == "__main__":
    sys.exit(main())

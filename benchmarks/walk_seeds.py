"""Trains `walk` (gpu preset) on several seeds and reports what each policy does.

Each seed is a separate `python -m experiments.walk` process; `--parallel N` runs N of them at
once on the same GPU (each then gets 1/N of the GPU memory), which shortens the session's
device time but makes each run slower than it would be alone: the table says which was used.
Per seed it reads the run's metrics.jsonl and reports every evaluation (deterministic policy,
the preset's eval envs, each env's first episode): mean forward x-velocity, fall rate, episode
length, return; the wall time (process start, compile included) at which an evaluation first
met the target (x-velocity >= 1 m/s with no falls); and the final evaluation. With `--after`,
each finished run is then evaluated (`python -m jaxhum.evaluate`, 128 episodes: speed, success,
energy) and checked sim-to-sim (`python -m jaxhum.sim2sim`, 16 episodes in native MuJoCo, which
also exports the policy to RUN_DIR/export), and both reports join the summary.

    python benchmarks/walk_seeds.py --seeds 0 1 2 --parallel 3 --out-dir runs/walk_seeds
    python benchmarks/walk_seeds.py --seeds 3 4 --parallel 2 --after
    python benchmarks/walk_seeds.py --seeds 0 --smoke         # tiny CPU run of the same thing

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

TARGET_VELOCITY = 1.0  # m/s, issue 8's target
SMOKE_OVERRIDES = ["ppo.num_envs=8", "ppo.unroll_length=5", "ppo.num_minibatches=2", "ppo.num_updates_per_batch=1",
                   "ppo.num_eval_envs=4", "env.episode_seconds=0.4", "num_timesteps=80", "eval_every=40",
                   "log_every=40", "checkpoint_every=80"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1, help="runs at once on the one GPU")
    parser.add_argument("--out-dir", default="runs/walk_seeds")
    parser.add_argument("--after", action="store_true", help="evaluate and sim2sim each trained run")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run (cpu preset, a few steps)")
    parser.add_argument("overrides", nargs="*", metavar="FIELD=VALUE", help="passed to every run")
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error(f"--parallel: must be >= 1, got {args.parallel}")
    return args


def launch(seed: int, run_dir: pathlib.Path, args: argparse.Namespace) -> subprocess.Popen:
    """Starts one training process; its output goes to run_dir/../seed<seed>.log."""
    cmd = [sys.executable, "-m", "experiments.walk", "--preset", "cpu" if args.smoke else "gpu",
           "--seed", str(seed), "--out", str(run_dir), "--progress", "lines",
           *(SMOKE_OVERRIDES if args.smoke else []), *args.overrides]
    env = dict(os.environ)
    if args.parallel > 1:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / args.parallel:.2f}"
    log = open(run_dir.parent / f"seed{seed}.log", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def launch_after(seed: int, run_dir: pathlib.Path, args: argparse.Namespace) -> subprocess.Popen:
    """Evaluates a trained run, then runs it sim-to-sim; output appended to the seed's log."""
    episodes = (4, 2) if args.smoke else (128, 16)
    py = sys.executable
    script = (f"{py} -m jaxhum.evaluate {run_dir} --episodes {episodes[0]} && "
              f"{py} -m jaxhum.sim2sim {run_dir} --episodes {episodes[1]}")
    env = dict(os.environ)
    if args.parallel > 1:  # other runs may still hold their share of the GPU memory
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / args.parallel:.2f}"
    log = open(run_dir.parent / f"seed{seed}.log", "a")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(["sh", "-c", script], stdout=log, stderr=subprocess.STDOUT, env=env)


def read_json(path: pathlib.Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def summarize(seed: int, run_dir: pathlib.Path, wall_s: float, returncode: int) -> dict:
    """Evaluations of one run from its metrics.jsonl."""
    evals = []
    path = run_dir / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        row = json.loads(line)
        if "eval/episode_reward" in row:
            evals.append({k: row.get(k) for k in ("step", "wall_s", "eval/x_velocity", "eval/fall_rate",
                                                  "eval/episode_length", "eval/episode_reward")})
    met = [e for e in evals if e["eval/x_velocity"] >= TARGET_VELOCITY and e["eval/fall_rate"] == 0.0]
    return {"seed": seed, "returncode": returncode, "process_wall_s": round(wall_s, 1), "evals": evals,
            "final": evals[-1] if evals else None, "first_target_met": met[0] if met else None,
            "evaluation": read_json(run_dir / "evaluation.json"), "sim2sim": read_json(run_dir / "sim2sim.json")}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pending, running, after, done = list(args.seeds), {}, {}, {}
    while pending or running or after:
        while pending and len(running) < args.parallel:
            seed = pending.pop(0)
            run_dir = out / f"walk_s{seed}"
            running[seed] = (launch(seed, run_dir, args), time.perf_counter(), run_dir)
        time.sleep(1.0)
        for seed, (proc, start, run_dir) in list(running.items()):
            if proc.poll() is not None:
                done[seed] = (run_dir, time.perf_counter() - start, proc.returncode)
                del running[seed]
                if args.after and proc.returncode == 0:
                    after[seed] = launch_after(seed, run_dir, args)
        for seed, proc in list(after.items()):
            if proc.poll() is not None:
                del after[seed]
    results = [summarize(seed, *done[seed]) for seed in sorted(done)]
    (out / "summary.json").write_text(json.dumps({"parallel": args.parallel, "runs": results}, indent=1))
    print(f"| seed | rc | final x-vel m/s | final fall rate | final ep len | final return | "
          f"target met at (steps, wall s) | process wall s |  (parallel={args.parallel})")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in results:
        f, m = r["final"] or {}, r["first_target_met"]
        met = f"{m['step'] / 1e6:.1f}M, {m['wall_s']:.0f} s" if m else "not met"
        print(f"| {r['seed']} | {r['returncode']} | {f.get('eval/x_velocity', float('nan')):.2f} | "
              f"{f.get('eval/fall_rate', float('nan')):.3f} | {f.get('eval/episode_length', float('nan')):.0f} | "
              f"{f.get('eval/episode_reward', float('nan')):.0f} | {met} | {r['process_wall_s']:.0f} |")
    for r in results:
        ev, s2s = r["evaluation"], r["sim2sim"]
        if ev:
            print(f"seed {r['seed']} evaluation: " + json.dumps({k: v for k, v in ev.items() if not isinstance(v, (dict, list))}))
        if s2s:
            print(f"seed {r['seed']} sim2sim: mujoco {json.dumps(s2s['mujoco'])} mjx {json.dumps(s2s['mjx'])}")
    return max(r["returncode"] for r in results)


if __name__ == "__main__":
    sys.exit(main())

"""GPU memory of the after-training tools beside a training process on the same GPU.

Trains a tiny humanoid_run run to export, starts the gpu preset's training in the background
(it preallocates JAX's default 75% of the GPU), waits until it logs, then runs
`python -m jaxhum.export` and `python -m jaxhum.evaluate` on the tiny run twice: as shipped
(memory on demand, `jaxhum.tools.memory`) and with `XLA_PYTHON_CLIENT_PREALLOCATE=true` forced
(the behaviour before). Prints one JSON object: each tool's exit status and the peak GPU memory
nvidia-smi saw for its process, and the trainer's.

    python benchmarks/tool_memory.py --out DIR        # on the GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import threading
import time


def _gpu_memory_by_pid() -> dict[int, int]:
    """{pid: MiB used on the GPU} from nvidia-smi."""
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    rows = (line.split(",") for line in out.strip().splitlines() if line.strip())
    return {int(pid): int(mib) for pid, mib in rows}


def _run_watched(cmd: list[str], env: dict[str, str]) -> dict[str, object]:
    """Runs `cmd`, sampling its GPU memory every 0.2 s; returns exit status, peak MiB, wall s, stderr tail."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def watch() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _gpu_memory_by_pid().get(proc.pid, 0))
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    start = time.monotonic()
    thread.start()
    _, err = proc.communicate()
    thread.join()
    return {"exit": proc.returncode, "peak_mib": peak[0], "wall_s": round(time.monotonic() - start, 1),
            "stderr_tail": err.strip().splitlines()[-1:] if err.strip() else []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="working directory for the runs")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    env = dict(os.environ)
    env.pop("XLA_PYTHON_CLIENT_PREALLOCATE", None)
    tiny = out / "tiny"
    subprocess.run([sys.executable, "-m", "experiments.humanoid_run", "--preset", "cpu", "num_timesteps=1280",
                    "eval_every=0", "--out", str(tiny), "--progress", "none"], env=env, check=True)
    trainer = subprocess.Popen([sys.executable, "-m", "experiments.humanoid_run", "--preset", "gpu",
                                "--out", str(out / "big"), "--progress", "lines"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in trainer.stdout:  # wait until it trains (its memory is taken by then)
            if "steps/s" in line or "step " in line:
                break
        trainer_mib = _gpu_memory_by_pid().get(trainer.pid, 0)
        total = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, check=True).stdout.strip()
        result: dict[str, object] = {"gpu_total_mib": int(total.splitlines()[0]), "trainer_mib": trainer_mib}
        for mode, extra in (("on_demand", {}), ("preallocate", {"XLA_PYTHON_CLIENT_PREALLOCATE": "true"})):
            for tool, tool_args in (
                ("export", ["--out", str(out / f"export_{mode}")]),
                ("evaluate", ["--episodes", "8"]),
            ):
                cmd = [sys.executable, "-m", f"jaxhum.{tool}", str(tiny), *tool_args]
                result[f"{tool}_{mode}"] = _run_watched(cmd, {**env, **extra})
    finally:
        trainer.kill()
        trainer.wait()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

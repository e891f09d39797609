"""How far the exported policy's actions are from JAX's: `python benchmarks/export_parity.py RUN_DIR [--out FILE]`.

Observations come from the run's own task (its randomization included): `--envs` episodes of
`--steps` steps under the deterministic policy. On them the actions of
  jax_default   the policy jitted at the backend's default matmul precision (on a GPU, TF32-like passes),
  jax_highest   the policy as `jaxhum.run.checkpoint.load_run` gives it (every matmul in full float32:
                what evaluation, sim-to-sim and export compare),
  onnxruntime   the exported policy.onnx (when onnxruntime is installed),
are compared with the numpy runner (`jaxhum.tools.deploy.Policy`, float32 on the CPU: what a robot
runs): max and mean |difference| over every action entry. Prints one JSON object (also --out).
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import sys

import numpy as np


def observations(run, envs: int, steps: int, seed: int) -> np.ndarray:
    """(envs * steps, obs_size) float32 observations of the run's task under its own policy."""
    import jax

    env, act = run.env, jax.jit(run.act)

    def body(state, _):
        state = jax.vmap(env.step)(state, act(run.params, state.obs))
        return state, state.obs

    @jax.jit
    def rollout(key):
        start = jax.vmap(env.reset)(jax.random.split(key, envs))
        return jax.lax.scan(body, start, None, length=steps)[1]

    return np.asarray(jax.device_get(rollout(jax.random.key(seed)))).reshape(envs * steps, -1)


def differences(reference: np.ndarray, actions: np.ndarray) -> dict[str, float]:
    d = np.abs(np.asarray(actions, np.float64) - reference)
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean())}


def parity(run_dir: str, envs: int, steps: int, seed: int) -> dict:
    import jax

    from jaxhum.run import checkpoint
    from jaxhum.tools import deploy, export

    run = checkpoint.load_run(run_dir)
    obs = observations(run, envs, steps, seed)
    arrays = export.policy_arrays(run)
    reference = deploy.Policy(arrays)(obs).astype(np.float64)
    default = jax.jit(functools.partial(_default_act, run))
    report = {
        "run_dir": str(run_dir), "checkpoint_step": run.step, "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind), "observations": int(obs.shape[0]),
        "jax_default": differences(reference, default(run.params, obs)),
        "jax_highest": differences(reference, jax.jit(run.act)(run.params, obs)),
    }
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(export.onnx_model(arrays).SerializeToString())
        name = session.get_inputs()[0].name
        report["onnxruntime"] = differences(reference, session.run(None, {name: obs.astype(np.float32)})[0])
    except ImportError:
        report["onnxruntime"] = None
    return report


def _default_act(run, params, obs):
    """The policy at the backend's default matmul precision (the function `run.act` wraps)."""
    return run.act.args[0](params, obs, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args(argv)
    report = parity(args.run_dir, args.envs, args.steps, args.seed)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

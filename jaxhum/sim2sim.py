"""Sim-to-sim: the exported policy in native MuJoCo beside MJX. `python -m jaxhum.sim2sim RUN_DIR`.

The policy is exported (`jaxhum.export`) into RUN_DIR/export/ (or `--export DIR` if already
written) and run through the numpy-only runner (`jaxhum.deploy.Policy`) in MuJoCo's C engine
(`mujoco.MjData`, `mj_step`) on the task's own host model (`env.sim.mj_model`: the same MJCF
loaded the same way, with the same solver options), with the task's observation built from
`MjData` in numpy (`env.deploy.host_observation`), the same action -> ctrl mapping and
`n_substeps = env.dt / timestep` physics steps per control step. Each native episode starts
from the same reset state (qpos, qvel) as the matching MJX episode. Printed and written to
RUN_DIR/sim2sim.json: success rate, forward velocity (and tracking errors for command tasks)
of both engines. A command task's native episode holds the first command of its MJX episode
for the whole episode; MJX resamples it as the task's config says (`resample_seconds`), so the
two engines see the same commands only for a task trained or configured with
`resample_seconds=0`.

Bad input: one line `error: <field>: <constraint>` on stderr, exit 2.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxhum import checkpoint

SIM2SIM_FILE = "sim2sim.json"


def reset_states(env: Any, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """qpos (N, nq), qvel (N, nv) of the N reset states MJX evaluation with this seed starts from,
    and for a command task their first commands (N, command_size) (None for other tasks)."""
    import jax

    keys = jax.random.split(jax.random.key(seed), episodes)
    state = jax.device_get(jax.jit(jax.vmap(env.reset))(keys))
    command = state.info.get("command") if isinstance(state.info, dict) else None
    return (np.asarray(state.data.qpos, np.float64), np.asarray(state.data.qvel, np.float64),
            None if command is None else np.asarray(command, np.float32))


def native_episode(env: Any, policy: Any, qpos: np.ndarray, qvel: np.ndarray,
                   command: np.ndarray | None = None) -> dict[str, float]:
    """One episode of a numpy policy in native MuJoCo from (qpos, qvel).

    A command task's `command` is held for the whole episode (passed to the host observation).
    Returns length (steps), terminated (0/1), distance (m, whole-body com along +x).
    """
    import mujoco

    model, spec = env.sim.mj_model, env.deploy
    n_substeps = int(round(env.dt / model.opt.timestep))
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = qpos, qvel
    mujoco.mj_forward(model, data)
    last_action = np.zeros(env.action_size, np.float32)
    extra = {} if command is None else {"command": command}
    obs = spec.host_observation(model=model, data=data, last_action=last_action, **extra)
    x0, terminated, steps = float(data.subtree_com[0, 0]), False, 0
    while steps < env.episode_length and not terminated:
        action = policy(obs)
        data.ctrl[spec.actuator_ids] = policy.ctrl(action)
        mujoco.mj_step(model, data, nstep=n_substeps)
        steps += 1
        last_action = action
        obs = spec.host_observation(model=model, data=data, last_action=last_action, **extra)
        terminated = spec.host_terminated(model=model, data=data)
        if not np.all(np.isfinite(data.qpos)):
            terminated = True  # a diverged simulation counts as a failure, never silently
    return {"length": steps, "terminated": float(terminated), "distance": float(data.subtree_com[0, 0]) - x0}


def compare(run: checkpoint.LoadedRun, policy: Any, episodes: int, seed: int,
            mjx_report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Native MuJoCo (numpy policy) against MJX (JAX policy) on the same reset states.

    `mjx_report`: `jaxhum.evaluate.evaluate_run(run, episodes, seed)` if already computed.
    """
    from jaxhum import evaluate

    if mjx_report is None:
        mjx_report = evaluate.evaluate_run(run, episodes, seed)
    qpos, qvel, commands = reset_states(run.env, episodes, seed)
    if commands is None:
        commands = [None] * episodes
    native = [native_episode(run.env, policy, q, v, c) for q, v, c in zip(qpos, qvel, commands)]
    length = sum(e["length"] for e in native)
    # success_rate also applies a command task's tracking bounds in MJX (not measured natively):
    # fall_rate is the figure both engines measure alike.
    keys = ["success_rate", "fall_rate", "forward_velocity", "episode_length"]
    keys += [k for k in mjx_report if k.startswith("tracking/")]
    return {
        "run_dir": str(run.run_dir),
        "task": run.config.env_name,
        "checkpoint_step": run.step,
        "episodes": episodes,
        "seed": seed,
        "mujoco": {
            "success_rate": float(np.mean([e["terminated"] == 0.0 for e in native])),
            "fall_rate": float(np.mean([e["terminated"] for e in native])),
            "forward_velocity": sum(e["distance"] for e in native) / (length * run.env.dt),
            "episode_length": length / episodes,
        },
        "mjx": {k: mjx_report[k] for k in keys},
    }


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{report['task']} checkpoint {report['checkpoint_step']}, {report['episodes']} episodes, seed {report['seed']}",
             f"  {'':<20} {'MJX':>10} {'MuJoCo':>10}"]
    for key in report["mjx"]:
        native = report["mujoco"].get(key)
        native_text = "n/a" if native is None else f"{native:.4g}"
        lines.append(f"  {key:<20} {report['mjx'][key]:>10.4g} {native_text:>10}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from jaxhum import export
    from jaxhum.evaluate import UsageError, _Parser, run_dir_arg

    parser = _Parser(prog="python -m jaxhum.sim2sim", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=str)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--best", action="store_true")
    parser.add_argument("--export", type=str, default=None, help="an export directory to use instead of (re)writing RUN_DIR/export, which is replaced on every run")
    try:
        args = parser.parse_args(argv)
        run_dir = run_dir_arg(args.run_dir)
        if args.episodes <= 0:
            raise UsageError(f"episodes: must be a positive integer, got {args.episodes}")
        if args.seed < 0:
            raise UsageError(f"seed: must be >= 0, got {args.seed}")
        if args.export is not None and not (pathlib.Path(args.export) / "policy.npz").is_file():
            raise UsageError(f"export: no policy.npz in {args.export}")
        run = checkpoint.load_run(run_dir, best=args.best)
        if args.export is None:
            out = run_dir / "export"
            export.export(run, out)
        else:
            out = pathlib.Path(args.export)
    except (UsageError, export.ExportError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from jaxhum.deploy import Policy

    report = compare(run, Policy.load(str(out / "policy.npz")), args.episodes, args.seed)
    path = run_dir / SIM2SIM_FILE
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

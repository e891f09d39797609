"""Sim-to-sim: the exported policy in native MuJoCo beside MJX. `python -m jaxhum.sim2sim RUN_DIR`.

The policy is exported (`jaxhum.export`) into RUN_DIR/export/ (or `--export DIR` if already
written) and run through the numpy-only runner (`jaxhum.tools.deploy.Policy`) in MuJoCo's C engine
(`mujoco.MjData`, `mj_step`) on the task's own host model (`env.sim.mj_model`: the same MJCF
loaded the same way, with the same solver options), with the task's observation built from
`MjData` in numpy (`env.deploy.host_observation`), the same action -> ctrl mapping and
`n_substeps = env.dt / timestep` physics steps per control step. Each native episode starts
from the same reset state (qpos, qvel) as the matching MJX episode. Printed and written to
RUN_DIR/sim2sim.json: success rate, fall rate, forward velocity and episode length of both
engines. A command task's native episode follows the command schedule of its MJX episode
(`env.command_schedule`: the task's own `next_command` scanned from the reset state's info, which
no physics moves): the same commands, resampled every `resample_seconds` at the same steps, reach
the host observation at the same step as MJX's. Its tracking errors (`tracking/vx`,
`tracking/yaw`) are measured as MJX evaluation measures them (`env.deploy.host_tracking`: the
step's base-frame velocimeter vx and gyro yaw rate against the command the step was taken under,
averaged over the steps of the episode, the one that ended it included, then over episodes), and
its success applies the task's tracking bounds as MJX's does. A randomized run's native episode
lives in its MJX episode's world (`jaxhum.tools.native_randomization`, replayed from the reset
state as the commands are): the episode's physics parameters written into a copy of the host
model, its action latency, its kicks added to the root velocity at the same steps (after the
delayed action, before the physics, as MJX adds them), its observation noise draws and its
observation lag, in MJX's order. The report's `randomization` names the fields applied natively
(`applied_natively`) and any that native MuJoCo cannot express (`mjx_only`; none today).

Bad input: one line `error: <field>: <constraint>` on stderr, exit 2.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from jaxhum.run import checkpoint

if TYPE_CHECKING:
    from jaxhum.tools.native_randomization import NativeWorld

SIM2SIM_FILE = "sim2sim.json"
TRACKING_PREFIX = "tracking/"  # = jaxhum.tools.episode_stats.TRACKING_PREFIX (not imported: it imports JAX)


class Starts(NamedTuple):
    """What the N native episodes start from, matching MJX evaluation's N episodes."""

    qpos: np.ndarray  # (N, nq) float64
    qvel: np.ndarray  # (N, nv) float64
    commands: np.ndarray | None  # (N, episode_length + 1, 3) a command task's schedules; None for others
    worlds: list[NativeWorld] | None  # per episode its randomized world; None without randomization


def episode_starts(env: Any, episodes: int, seed: int) -> Starts:
    """The N reset states MJX evaluation with this seed starts from
    (`evaluation.make_episode_evaluator`: `vmap(env.reset)` over `split(key(seed), N)`), with for
    a command task their command schedules (`env.command_schedule`: entry t is the command in the
    observation after step t, the one step t + 1 is tracked under) and for a randomized task
    their worlds (`native_randomization.episode_worlds`)."""
    import jax

    from jaxhum.tools import native_randomization

    keys = jax.random.split(jax.random.key(seed), episodes)
    state = jax.jit(jax.vmap(env.reset))(keys)
    schedule = getattr(env, "command_schedule", None)
    commands = None if schedule is None else jax.jit(jax.vmap(schedule))(state.info)
    data = jax.device_get(state.data)
    return Starts(np.asarray(data.qpos, np.float64), np.asarray(data.qvel, np.float64),
                  None if commands is None else np.asarray(commands, np.float32),
                  native_randomization.episode_worlds(env, keys, state.info))


def reset_states(env: Any, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """qpos (N, nq), qvel (N, nv) and command schedules (N, episode_length + 1, 3) or None of
    `episode_starts`."""
    starts = episode_starts(env, episodes, seed)
    return starts.qpos, starts.qvel, starts.commands


def native_episode(env: Any, policy: Any, qpos: np.ndarray, qvel: np.ndarray,
                   commands: np.ndarray | None = None, world: NativeWorld | None = None) -> dict[str, float]:
    """One episode of a numpy policy in native MuJoCo from (qpos, qvel).

    `commands` (episode_length + 1, 3): a command task's schedule (`episode_starts`), as MJX steps
    it: the observation after step t shows `commands[t]`, and step t + 1's tracking errors
    (`env.deploy.host_tracking`) are those under `commands[t]`.
    `world`: the episode's randomized world (`native_randomization.NativeWorld`); None: the
    nominal model, no noise, lag, latency or kicks. A step, as MJX's: policy(observation) ->
    delayed action -> ctrl -> kick -> `n_substeps` physics steps -> true observation -> noise -> lag
    -> the last `env.observation_history` frames.
    Returns length (steps), terminated (0/1), distance (m, whole-body com along +x) and, given
    `commands`, `tracking/<name>`: the mean over the steps taken (the one that ended it included).
    """
    import mujoco

    from jaxhum.tools.native_randomization import ActionDelay, ObservationPath

    spec = env.deploy
    model = env.sim.mj_model if world is None else world.model(env.sim.mj_model)
    n_substeps = int(round(env.dt / model.opt.timestep))
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = qpos, qvel
    mujoco.mj_forward(model, data)
    seen = ObservationPath(world, env.observation_history)
    delay = ActionDelay(0 if world is None else world.action_latency, env.action_size)

    def observe(last_action: np.ndarray, t: int) -> np.ndarray:
        """The policy's input after t steps: the task's true observation, then what `seen` makes of it."""
        extra = {} if commands is None else {"command": commands[t]}
        return seen(spec.host_observation(model=model, data=data, last_action=last_action, **extra), t)

    obs = observe(np.zeros(env.action_size, np.float32), 0)
    x0, terminated, steps, tracking = float(data.subtree_com[0, 0]), False, 0, {}
    while steps < env.episode_length and not terminated:
        action = policy(obs)
        data.ctrl[spec.actuator_ids] = policy.ctrl(delay(action))
        if world is not None:
            world.kick(data.qvel, steps)
        mujoco.mj_step(model, data, nstep=n_substeps)
        if commands is not None:
            for name, error in spec.host_tracking(model=model, data=data, command=commands[steps]).items():
                tracking[name] = tracking.get(name, 0.0) + error
        steps += 1
        obs = observe(action, steps)
        terminated = spec.host_terminated(model=model, data=data)
        if not np.all(np.isfinite(data.qpos)):
            terminated = True  # a diverged simulation counts as a failure, never silently
    return {"length": steps, "terminated": float(terminated), "distance": float(data.subtree_com[0, 0]) - x0,
            **{name: total / steps for name, total in tracking.items()}}


def native_figures(native: Sequence[dict[str, float]], dt: float,
                   tracking_bounds: dict[str, float] | None = None) -> dict[str, Any]:
    """The report's figures of N native episodes (`native_episode`'s dicts), as
    `evaluation.summarize` defines them: success = not fallen and every mean tracking error within
    its bound (`tracking_bounds`, {name: bound}); `tracking/<name>`: mean of the episodes' means
    (None if not finite)."""
    length = sum(e["length"] for e in native)
    names = sorted(k for k in native[0] if k.startswith(TRACKING_PREFIX))
    bounds = {TRACKING_PREFIX + k: v for k, v in (tracking_bounds or {}).items()}

    def success(e: dict[str, float]) -> bool:
        return e["terminated"] == 0.0 and all(e[n] <= bounds[n] for n in names if n in bounds)

    figures = {
        "success_rate": float(np.mean([success(e) for e in native])),
        "fall_rate": float(np.mean([e["terminated"] for e in native])),
        "forward_velocity": sum(e["distance"] for e in native) / (length * dt),
        "episode_length": length / len(native),
    }
    for name in names:
        mean = float(np.mean([e[name] for e in native]))
        figures[name] = mean if np.isfinite(mean) else None
    return figures


def compare(run: checkpoint.LoadedRun, policy: Any, episodes: int, seed: int,
            mjx_report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Native MuJoCo (numpy policy) against MJX (JAX policy) on the same reset states and, for a
    command task, the same command schedules.

    `mjx_report`: `jaxhum.tools.evaluate.evaluate_run(run, episodes, seed)` if already computed.
    """
    from jaxhum.tools import evaluate, native_randomization

    if mjx_report is None:
        mjx_report = evaluate.evaluate_run(run, episodes, seed)
    starts = episode_starts(run.env, episodes, seed)
    commands = [None] * episodes if starts.commands is None else starts.commands
    worlds = [None] * episodes if starts.worlds is None else starts.worlds
    native = [native_episode(run.env, policy, q, v, c, w)
              for q, v, c, w in zip(starts.qpos, starts.qvel, commands, worlds)]
    keys = ["success_rate", "fall_rate", "forward_velocity", "episode_length"]
    keys += [k for k in mjx_report if k.startswith(TRACKING_PREFIX)]
    return {
        "run_dir": str(run.run_dir),
        "task": run.config.env_name,
        "checkpoint_step": run.step,
        "episodes": episodes,
        "seed": seed,
        "mujoco": native_figures(native, run.env.dt, getattr(run.env, "tracking_bounds", None)),
        "mjx": {k: mjx_report[k] for k in keys},
        "randomization": native_randomization.report(run.env),
    }


def format_table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['task']} checkpoint {report['checkpoint_step']}, {report['episodes']} episodes, "
        f"seed {report['seed']}",
        f"  {'':<20} {'MJX':>10} {'MuJoCo':>10}",
    ]

    def text(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    for key in report["mjx"]:
        lines.append(f"  {key:<20} {text(report['mjx'][key]):>10} {text(report['mujoco'].get(key)):>10}")
    if "randomization" in report:
        lines.append(randomization_line(report["randomization"]))
    return "\n".join(lines)


def randomization_line(randomization: dict[str, list[str]]) -> str:
    """The table's last line: the randomization applied in both engines and any applied in MJX alone."""
    both, mjx_only = randomization["applied_natively"], randomization["mjx_only"]
    if not both and not mjx_only:
        return "  randomization: none (the nominal model in both engines)"
    return (f"  randomization in both engines: {', '.join(both) or 'none'}; "
            f"MJX only: {', '.join(mjx_only) or 'none'}")


def main(argv: Sequence[str] | None = None) -> int:
    from jaxhum.run.cli import ArgumentParser, UsageError, run_dir_arg
    from jaxhum.tools import export
    from jaxhum.tools.memory import use_memory_on_demand

    use_memory_on_demand()  # before any device use: JAX would take 75% of the GPU

    parser = ArgumentParser(
        prog="python -m jaxhum.sim2sim", description=__doc__.splitlines()[0], error_prefix="arguments: "
    )
    parser.add_argument("run_dir", type=str)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--best", action="store_true")
    parser.add_argument(
        "--export",
        type=str,
        default=None,
        help="an export directory to use instead of (re)writing RUN_DIR/export, which is replaced on every run",
    )
    try:
        args = parser.parse_args(argv)
        run_dir = run_dir_arg(args.run_dir)
        if args.episodes <= 0:
            raise UsageError(f"episodes: must be a positive integer, got {args.episodes}")
        if args.seed < 0:
            raise UsageError(f"seed: must be >= 0, got {args.seed}")
        if args.export is not None and not (pathlib.Path(args.export) / "policy.npz").is_file():
            raise UsageError(f"export: no policy.npz in {args.export}")
        run = checkpoint.load_run(run_dir, best=args.best, compile_cache=True)
        if args.export is None:
            out = run_dir / "export"
            export.export(run, out)
        else:
            out = pathlib.Path(args.export)
    except (UsageError, export.ExportError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from jaxhum.tools.deploy import Policy

    report = compare(run, Policy.load(str(out / "policy.npz")), args.episodes, args.seed)
    path = run_dir / SIM2SIM_FILE
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

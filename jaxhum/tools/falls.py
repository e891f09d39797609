"""Why a trained run falls under pushes: `python -m jaxhum.falls RUN_DIR [--episodes N] [--seed S] [--step K]`.

Runs the deterministic policy (tanh of the Gaussian mean) for N episodes (default 256) of the
run's own task as it trained (its randomization and pushes included), one episode per env reset
from `S` (default 0), each for `env.episode_length` steps without autoreset; only each env's first
episode counts (the steps after the one that ended it are masked). It records per step the kick
(`metrics['push_magnitude']`), the fall (`metrics['fall']`), the feet on the floor, the action and
the norm of the followed command (command tasks), and says:

  when each fallen episode fell relative to its last kick, that kick's magnitude, the feet down at
  it and the command at the fall; falls by time since the last kick (<0.5 s, 0.5-1 s, 1-2 s, >2 s,
  no kick); per kick magnitude and per feet down at the kick, the share of kicks followed by a fall
  within 2 s; and whether the policy reacts at all: the mean action change |a_t - a_{t-1}| (mean
  over joints) over the 0.3 s after each kick against the 0.3 s before it.

Time: control step t runs from t dt to (t + 1) dt. A kick on step t is added to the root velocity
at t dt, before that step's physics (so the action of step t was chosen before it, and the first
action that can answer it is step t + 1's); a fall on step t is seen at (t + 1) dt. The feet "at a
kick" are those on the floor in the state the kick hits. A kick whose 2 s ran past the end of its
episode without a fall is censored: counted, but left out of the shares.

Writes `falls.json` (every figure) into the run directory and prints a short report. A run whose
task has no pushes is refused. Bad input stops before anything is compiled or written: one line
`error: <field>: <constraint>` on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import numpy as np

from jaxhum.run import checkpoint
from jaxhum.run.cli import ArgumentParser, UsageError, run_dir_arg

FALLS_FILE = "falls.json"
FALL_WINDOW_SECONDS = 2.0  # a kick "followed by a fall": the fall comes less than this long after it
REACTION_SECONDS = 0.3  # the windows before and after a kick whose action changes are compared
SINCE_KICK_EDGES = (0.5, 1.0, 2.0)  # s; bins [0, 0.5), [0.5, 1), [1, 2), [2, inf)
SINCE_KICK_LABELS = ("<0.5 s", "0.5-1 s", "1-2 s", ">2 s")
NO_KICK = "no kick"
MAGNITUDE_EDGES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)  # m/s; bins [lo, hi), the last open
MAGNITUDE_LABELS = ("0-0.25", "0.25-0.5", "0.5-0.75", "0.75-1.0", "1.0-1.25", "1.25-1.5", ">1.5")
FEET_LABELS = ("0", "1", "2")


# ----------------------------------------------------------------------------- the rollout (JAX)


class StepRecord(NamedTuple):
    """What one control step of N envs leaves on the host; a scan stacks these to (T, N, ...)."""

    push: Any  # (N,) float32 m/s of the kick added on this step (0: none)
    fell: Any  # (N,) bool, the robot is down after this step (`metrics['fall']`)
    ended: Any  # (N,) bool, this step ended the episode (done) or turned its state non-finite
    nonfinite: Any  # (N,) bool, the state turned NaN/inf on this step
    contacts: Any  # (N, 2) float32 feet on the floor in the state this step starts from
    action: Any  # (N, A) float32 the policy's action on this step
    command_norm: Any  # (N,) float32 norm of the followed command on this step; None without a command


def check_pushes(env: Any, run_dir: Any) -> None:
    """Raises UsageError (field run_dir) unless the run's task pushes the robot."""
    rand = getattr(env.config, "randomization", None)
    if rand is None or not rand.pushes_on:
        raise UsageError(f"run_dir: {run_dir} trains {env.name} without pushes (no randomization.push_interval); "
                         "nothing to diagnose")


def make_rollout(env: Any, act: Callable[[Any, Any], Any], episodes: int) -> Callable[[Any, Any], StepRecord]:
    """Builds `rollout(params, key) -> StepRecord` of (T, N, ...) arrays, T = `env.episode_length`,
    N = `episodes` envs reset from `split(key, N)` and stepped without reset (pure; jit it)."""
    import jax

    from jaxhum import robots

    contacts = jax.vmap(functools.partial(robots.foot_contacts, env.robot.index(env.sim)))

    def rollout(params: Any, key: jax.Array) -> StepRecord:
        start = jax.vmap(env.reset)(jax.random.split(key, episodes))
        body = functools.partial(_record_step, env, act, contacts, params)
        _, record = jax.lax.scan(body, start, None, length=env.episode_length)
        return record

    return rollout


def _record_step(env: Any, act: Callable[[Any, Any], Any], contacts: Callable[[Any], Any], params: Any,
                 state: Any, _: None) -> tuple[Any, StepRecord]:
    """One control step of the N envs (`state`, a batched EnvState) and what it leaves on the host."""
    import jax
    import jax.numpy as jnp

    from jaxhum.envs.base import NONFINITE
    from jaxhum.envs.terms.commands import followed_command

    action = act(params, state.obs)
    nxt = jax.vmap(env.step_without_reset)(state, action)
    command_norm = None
    if "command" in state.info:  # the command the policy followed on this step
        command_norm = jnp.linalg.norm(jax.vmap(followed_command)(state.info), axis=-1)
    nonfinite = nxt.metrics[NONFINITE] > 0.0
    record = StepRecord(push=nxt.metrics["push_magnitude"], fell=nxt.metrics["fall"] > 0.0,
                        ended=(nxt.done > 0.0) | nonfinite, nonfinite=nonfinite, contacts=contacts(state.data),
                        action=action, command_norm=command_norm)
    return nxt, record


def first_episode_mask(ended: np.ndarray) -> np.ndarray:
    """(N, T) bool: step t belongs to the env's first episode, up to and including the step that
    ended it (`ended` (N, T) bool)."""
    chex.assert_rank(ended, 2)
    ended = np.asarray(ended, bool)
    return (np.cumsum(ended, axis=1) - ended) == 0


def diagnose_run(run: checkpoint.LoadedRun, episodes: int, seed: int) -> dict[str, Any]:
    """Rolls out a loaded run (`episodes` envs from `seed`) and returns the report dict."""
    import jax

    rollout = jax.jit(make_rollout(run.env, run.act, episodes))
    record = jax.device_get(rollout(run.params, jax.random.key(seed)))
    r = jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1), record)  # (N, T, ...)
    alive = first_episode_mask(r.ended)
    figures = analyse(r.push, r.fell, alive, r.contacts, r.action, r.command_norm, run.env.dt)
    return {"run_dir": str(run.run_dir), "task": run.config.env_name, "checkpoint_step": run.step, "seed": seed,
            "control_dt": run.env.dt, **figures,
            "nonfinite_episodes": int(np.sum(np.any(r.nonfinite & alive, axis=1)))}


# ----------------------------------------------------------------------------- the analysis (numpy)


class Kicks(NamedTuple):
    """Every analysed kick, each (K,)."""

    env: np.ndarray  # int, its episode
    step: np.ndarray  # int, the step it was added on
    magnitude: np.ndarray  # float, m/s
    feet: np.ndarray  # int in 0..2, feet on the floor when it came
    followed: np.ndarray  # bool, its episode fell within FALL_WINDOW_SECONDS of it
    observed: np.ndarray  # bool, followed, or its episode ran FALL_WINDOW_SECONDS past it (not censored)


def _seconds(steps: Any, dt: float) -> np.ndarray:
    """steps * dt, rounded to 1e-9 s so that a bin edge is not missed by a float's last bit."""
    return np.round(np.asarray(steps) * dt, 9)


def first_fall(fell: np.ndarray, alive_mask: np.ndarray) -> np.ndarray:
    """(N,) int the first step of each episode on which the robot is down; -1 if it never is."""
    hit = np.asarray(fell, bool) & alive_mask
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)


def last_kick(kicked: np.ndarray) -> np.ndarray:
    """(N,) int the last step with a kick in each row of `kicked` (N, T) bool; -1 if none."""
    t = kicked.shape[1]
    return np.where(kicked.any(axis=1), t - 1 - kicked[:, ::-1].argmax(axis=1), -1)


def collect_kicks(push: np.ndarray, kicked: np.ndarray, contacts: np.ndarray, fall_step: np.ndarray,
                  end_step: np.ndarray, dt: float) -> Kicks:
    """The kicks (`kicked` (N, T) bool) with their outcomes; `fall_step`, `end_step` (N,) int: the
    episode's fall (-1: none) and its last analysed step."""
    env, step = np.nonzero(kicked)
    fall = fall_step[env]
    followed = (fall >= 0) & (_seconds(fall + 1 - step, dt) < FALL_WINDOW_SECONDS)
    observed = followed | (_seconds(end_step[env] + 1 - step, dt) >= FALL_WINDOW_SECONDS)
    feet = np.clip(np.rint(contacts[env, step].sum(axis=-1)), 0, 2).astype(int)
    return Kicks(env, step, push[env, step].astype(float), feet, followed, observed)


def share_table(labels: Sequence[str], bins: np.ndarray, kicks: Kicks) -> list[dict[str, Any]]:
    """Per bin (`bins` (K,) int, the bin of each kick): kicks, falls within the window, censored
    kicks, and share = falls / (kicks - censored) (None when every kick is censored)."""
    rows = []
    for i, label in enumerate(labels):
        sel = bins == i
        n, falls, censored = int(sel.sum()), int((sel & kicks.followed).sum()), int((sel & ~kicks.observed).sum())
        share = falls / (n - censored) if n > censored else None
        rows.append({"bin": label, "kicks": n, "falls_within_2s": falls, "censored": censored, "share": share})
    return rows


def reaction(action: np.ndarray, kicks: Kicks, end_step: np.ndarray, dt: float) -> dict[str, Any]:
    """The mean action change c_t = mean_j |a_t - a_{t-1}| over the W = REACTION_SECONDS / dt steps
    after each kick (t = k + 1 .. k + W) and before it (t = k - W + 1 .. k), over the kicks k whose
    windows lie inside their episode; `action` (N, T, A), `end_step` (N,) int."""
    chex.assert_rank(action, 3)
    w = max(1, int(round(REACTION_SECONDS / dt)))
    change = np.zeros(action.shape[:2])
    change[:, 1:] = np.mean(np.abs(np.diff(action, axis=1)), axis=-1)
    inside = (kicks.step - w >= 0) & (kicks.step + w <= end_step[kicks.env])
    env, step = kicks.env[inside][:, None], kicks.step[inside][:, None]
    offsets = np.arange(w)[None]
    before = change[env, step - offsets].mean(axis=1)
    after = change[env, step + 1 + offsets].mean(axis=1)
    b, a = (float(before.mean()), float(after.mean())) if inside.any() else (None, None)
    return {"window_s": w * dt, "kicks": int(inside.sum()), "before": b, "after": a,
            "after_over_before": a / b if b else None}


def fallen_episodes(push: np.ndarray, contacts: np.ndarray, command_norm: np.ndarray | None, fall_step: np.ndarray,
                    kick_step: np.ndarray, dt: float) -> list[dict[str, Any]]:
    """One record per fallen episode: when it fell, the time since its last kick (None: no kick
    before the fall), that kick's magnitude and feet down, the command norm at the fall."""
    out = []
    for i in np.flatnonzero(fall_step >= 0):
        f, k = int(fall_step[i]), int(kick_step[i])
        kicked = k >= 0
        out.append({
            "episode": int(i), "fall_s": float(_seconds(f + 1, dt)),
            "since_kick_s": float(_seconds(f + 1 - k, dt)) if kicked else None,
            "kick_magnitude": float(push[i, k]) if kicked else None,
            "feet_down_at_kick": int(np.rint(contacts[i, k].sum())) if kicked else None,
            "command_norm": None if command_norm is None else float(command_norm[i, f]),
        })
    return out


def since_kick_table(falls: list[dict[str, Any]]) -> dict[str, int]:
    """Falls per bin of the time since the last kick (`SINCE_KICK_LABELS`, then `NO_KICK`)."""
    table = dict.fromkeys((*SINCE_KICK_LABELS, NO_KICK), 0)
    for fall in falls:
        s = fall["since_kick_s"]
        table[NO_KICK if s is None else SINCE_KICK_LABELS[int(np.digitize(s, SINCE_KICK_EDGES))]] += 1
    return table


def analyse(push: np.ndarray, fell: np.ndarray, alive_mask: np.ndarray, contacts: np.ndarray, action: np.ndarray,
            command_norm: np.ndarray | None, dt: float) -> dict[str, Any]:
    """The report's figures from N recorded episodes of T steps.

    Args:
      push: (N, T) m/s of the kick added on step t (0: none; a kick of 0 m/s is no kick).
      fell: (N, T) bool, the robot is down after step t.
      alive_mask: (N, T) bool, step t is in the episode (a prefix: up to the step that ended it).
      contacts: (N, T, 2) feet on the floor in the state step t starts from (what its kick hits).
      action: (N, T, A) the policy's action on step t.
      command_norm: (N, T) the norm of the command followed on step t, or None (no command).
      dt: control step (s).
    Each episode is analysed up to its first fall (included), or to its end.

    Returns:
      episodes, falls, fall_rate, kicks, kicks_censored, fallen_episodes (`fallen_episodes`),
      falls_by_time_since_kick (`since_kick_table`), kicks_by_magnitude and kicks_by_feet_down
      (`share_table` rows), reaction (`reaction`), fall_window_s.
    """
    chex.assert_rank([push, fell, alive_mask], 2)
    chex.assert_equal_shape([push, fell, alive_mask])
    chex.assert_shape(contacts, (*push.shape, 2))
    chex.assert_shape(action, (*push.shape, None))
    if command_norm is not None:
        chex.assert_equal_shape([push, command_norm])
    n, t = push.shape
    alive_mask = np.asarray(alive_mask, bool)
    fall_step = first_fall(fell, alive_mask)
    span = alive_mask & (np.arange(t)[None] <= np.where(fall_step >= 0, fall_step, t)[:, None])
    end_step = span.sum(axis=1) - 1
    kicked = (np.asarray(push) > 0.0) & span
    kicks = collect_kicks(push, kicked, contacts, fall_step, end_step, dt)
    falls = fallen_episodes(push, contacts, command_norm, fall_step, last_kick(kicked), dt)
    return {
        "episodes": n, "falls": len(falls), "fall_rate": len(falls) / n,
        "kicks": len(kicks.step), "kicks_censored": int((~kicks.observed).sum()),
        "fall_window_s": FALL_WINDOW_SECONDS,
        "falls_by_time_since_kick": since_kick_table(falls),
        "kicks_by_magnitude": share_table(MAGNITUDE_LABELS, np.digitize(kicks.magnitude, MAGNITUDE_EDGES), kicks),
        "kicks_by_feet_down": share_table(FEET_LABELS, kicks.feet, kicks),
        "reaction": reaction(np.asarray(action, float), kicks, end_step, dt),
        "fallen_episodes": falls,
    }


# ----------------------------------------------------------------------------- report and command line


def _share(row: dict[str, Any]) -> str:
    return "-" if row["share"] is None else f"{row['share']:.2f}"


def _table(title: str, rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"  {title:<26} {'kicks':>6} {'fell <2 s':>10} {'censored':>9} {'share':>6}"]
    lines += [f"    {r['bin']:<24} {r['kicks']:>6} {r['falls_within_2s']:>10} {r['censored']:>9} {_share(r):>6}"
              for r in rows if r["kicks"]]
    return lines


def format_report(report: dict[str, Any]) -> str:
    """The report as a few aligned lines (bins without kicks left out)."""
    since = report["falls_by_time_since_kick"]
    rx = report["reaction"]
    react = "n/a (no kick with both windows inside its episode)"
    if rx["kicks"]:
        ratio = "" if rx["after_over_before"] is None else f", x{rx['after_over_before']:.2f}"
        react = f"{rx['before']:.4g} before, {rx['after']:.4g} after{ratio} ({rx['kicks']} kicks)"
    return "\n".join([
        f"{report['task']} checkpoint {report['checkpoint_step']}, {report['episodes']} episodes, "
        f"seed {report['seed']}",
        f"  falls {report['falls']} of {report['episodes']} (fall rate {report['fall_rate']:.3g}); "
        f"kicks {report['kicks']} ({report['kicks_censored']} censored)",
        "  falls by time since the last kick: " + ", ".join(f"{k} {v}" for k, v in since.items()),
        *_table("kick magnitude (m/s)", report["kicks_by_magnitude"]),
        *_table("feet down at the kick", report["kicks_by_feet_down"]),
        f"  mean |a_t - a_t-1| over {rx['window_s']:.2g} s around a kick: {react}",
    ])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m jaxhum.falls", description=__doc__.splitlines()[0],
                            error_prefix="arguments: ")
    parser.add_argument("run_dir", type=str)
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step", type=int, default=None, help="the checkpoint's env step (default: the newest)")
    args = parser.parse_args(argv)
    args.run_dir = run_dir_arg(args.run_dir)
    if args.episodes <= 0:
        raise UsageError(f"episodes: must be a positive integer, got {args.episodes}")
    if args.seed < 0:
        raise UsageError(f"seed: must be >= 0, got {args.seed}")
    if args.step is not None and args.step < 0:
        raise UsageError(f"step: must be >= 0, got {args.step}")
    return args


def _json_ready(value: Any) -> Any:
    """Non-finite floats (none expected) as None, so falls.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    from jaxhum.tools.memory import use_memory_on_demand

    use_memory_on_demand()  # before any device use: JAX would take 75% of the GPU

    try:
        args = parse_args(argv)
        run = checkpoint.load_run(args.run_dir, step=args.step, compile_cache=True)
        check_pushes(run.env, args.run_dir)
    except (UsageError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = diagnose_run(run, args.episodes, args.seed)
    if report["nonfinite_episodes"]:
        print(f"warning: {report['nonfinite_episodes']} episode(s) hit NaN/inf and were cut short", file=sys.stderr)
    out = args.run_dir / FALLS_FILE
    out.write_text(json.dumps(_json_ready(report), indent=2) + "\n")
    print(format_report(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The shared experiment runner: run config, command line and the host training loop.

An experiment module only supplies `get_config(preset)` and calls `run_cli`:

    def main(argv=None) -> int:
        return runner.run_cli(get_config, argv, name="humanoid_run", presets=PRESETS)

The host loop only does I/O. Each pass calls the jitted `trainer.iteration(state)` once; every
`log_every` env steps it pulls the metrics to the host; every `eval_every` it evaluates (and
logs) with the key `fold_in(eval_key, iteration)` (the eval key is split from the seed once, so
evaluation never touches the training key stream); every `checkpoint_every` it saves the complete
TrainState. SIGINT/SIGTERM set a flag that is checked between iterations: the loop then saves
a checkpoint and returns 128 + signal number. On a GPU, the iteration's and the evaluation's
programs compile in background threads (`jaxhum.rl.parallel.Precompile`, from the state's shapes)
while init compiles and runs (or a checkpoint is restored), instead of one after the other, the
evaluation's stalling the run at its first evaluation.

With `num_seeds` K > 1 one program trains K seeds and the loop writes K run directories
(`run_dir/seed_<S>`, each a complete one-seed run); with more than one device the env batch and
the minibatches are split over them (`jaxhum.rl.parallel`).

Cadences are given in env steps and rounded to whole iterations of
`ppo.num_envs * ppo.unroll_length` env steps (at least one iteration).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import errno
import functools
import math
import os
import pathlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from jaxhum import checkpoint as checkpoint_lib
from jaxhum import config as config_lib
from jaxhum import finetune
from jaxhum import runlog
from jaxhum.checkpoint import saved_config
from jaxhum.config import ConfigError, FrozenMapping

# What a run is (config, building its env/trainer/policy) lives in jaxhum.runs, which loading a
# run uses without this training loop; re-exported here, where experiments have always found it.
from jaxhum.runs import (
    RESUMABLE_FIELDS,
    SEEDS_FILE,
    RunConfig,
    build_env,
    build_trainer,
    every_iterations,
    make_policy,
    num_iterations,
    seed_config,
    seed_run_dirs,
    seeds_of,
    state_template,
    steps_per_iteration,
    train_keys,
)

__all__ = [
    "RESUMABLE_FIELDS",
    "RunConfig",
    "RunResult",
    "build_env",
    "build_trainer",
    "every_iterations",
    "make_policy",
    "num_iterations",
    "prepare",
    "run_cli",
    "saved_config",
    "state_template",
    "steps_per_iteration",
    "train",
    "validate",
]


# ----------------------------------------------------------------------------- validation


def _from_value_error(prefix: str, err: ValueError) -> ConfigError:
    """'name: constraint' from a component's ValueError as a ConfigError on prefix.name."""
    if isinstance(err, ConfigError):
        return ConfigError(f"{prefix}.{err.field}", err.constraint)
    text = " ".join(str(err).split())
    name, sep, rest = text.partition(": ")
    if sep and name.replace("_", "").replace(".", "").isalnum():
        return ConfigError(f"{prefix}.{name}", rest)
    return ConfigError(prefix, text)


def _build_error(config: RunConfig, err: Exception) -> ConfigError:
    """A failure to build the task as one line on the env field it comes from (else `env`).

    Model files are the usual culprit: a missing, unreadable or malformed MJCF file, or one
    without a body/joint/site the task looks up, is reported on `env.model_path` when the task
    has that field.
    """
    from jaxhum import envs, sim

    fields = config_lib.field_types(envs.REGISTRY[config.env_name].config_cls)
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, (sim.ModelLoadError, sim.NameLookupError)) and "model_path" in fields:
        return ConfigError("env.model_path", text)
    if isinstance(err, ValueError):
        named = _from_value_error("env", err)
        task_field = named.field.partition(".")[2].partition(".")[0].partition("[")[0]
        if task_field in fields:
            return named
    return ConfigError("env", f"{config.env_name} could not be built: {type(err).__name__}: {text}")


def _check_builds(config: RunConfig) -> None:
    """Builds the task now (memoized; loads its model, compiles nothing), so that a bad model
    file or a missing name is bad input reported before anything is written."""
    try:
        build_env(config)
    except Exception as err:  # whatever the task raises, the user gets one line
        raise _build_error(config, err) from None


def _validate_env(config: RunConfig) -> RunConfig:
    from jaxhum import envs

    require = config_lib.require
    require(config.env_name in envs.REGISTRY, "env_name",
            f"must be one of {', '.join(sorted(envs.REGISTRY))}, got {config.env_name!r}")
    config_cls = envs.REGISTRY[config.env_name].config_cls
    types_ = config_lib.field_types(config_cls)
    for key in config.env:
        require(key in types_, f"env.{key}", f"unknown field of {config.env_name}; known fields: {', '.join(sorted(types_))}")
    # Values typed from the command line as JSON literals take the task config's field types; a
    # group given in part (env.randomization.push_velocity=...) keeps the task's other defaults.
    defaults = config_cls()

    def typed(key: str, value: Any) -> Any:
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default) and isinstance(value, Mapping):
            value = envs.registry.over_defaults(default, value)
        return config_lib.coerce(value, types_[key], f"env.{key}")

    env = FrozenMapping({k: typed(k, v) for k, v in config.env.items()})
    try:
        envs.make_config(config.env_name, **env)
    except ValueError as err:
        raise _from_value_error("env", err) from None
    return dataclasses.replace(config, env=env)


def _validate_devices(config: RunConfig) -> None:
    """devices names a device count that exists and divides the env batch and the minibatches."""
    import jax

    require = config_lib.require
    available = jax.device_count() if config.devices == 0 else jax.local_device_count()
    require(0 <= config.devices <= available, "devices",
            f"must be 0 (all devices) or a count in 1..{available} (local devices), got {config.devices}")
    count = config.devices or available
    if count > 1:
        require(config.ppo.num_envs % count == 0, "ppo.num_envs",
                f"must be divisible by the {count} devices (devices={config.devices}), got {config.ppo.num_envs}")
        require(config.ppo.minibatch_size % count == 0, "ppo.num_minibatches",
                f"the minibatch size num_envs * unroll_length / num_minibatches = {config.ppo.minibatch_size} "
                f"must be divisible by the {count} devices, got num_minibatches {config.ppo.num_minibatches}")


def validate(config: RunConfig, build: bool = True) -> RunConfig:
    """Checks a run config; returns it with env override values coerced to their types.

    Every float must be finite (except `stop_at_eval_return=inf`). With `build`, the task is
    also built (`build_env`, memoized: its model is loaded, nothing is compiled), so a missing
    or malformed model file is reported here rather than as a traceback once the run started.

    Raises:
      ConfigError: one line naming the first invalid field and the constraint it breaks
        (`env.model_path` or `env` for a task that fails to build).
    """
    config_lib.validate_types(config)
    require = config_lib.require
    for name in ("num_timesteps", "log_every", "checkpoint_every", "keep_checkpoints"):
        value = getattr(config, name)
        require(value > 0, name, f"must be a positive integer, got {value}")
    require(config.eval_every >= 0, "eval_every", f"must be >= 0 (0 disables evaluation), got {config.eval_every}")
    require(config.seed >= 0, "seed", f"must be >= 0, got {config.seed}")
    require(config.num_seeds > 0, "num_seeds", f"must be a positive integer, got {config.num_seeds}")
    require(not (config.init_from and config.num_seeds > 1), "init_from",
            f"fine-tuning trains one seed: must be empty with num_seeds > 1, got num_seeds {config.num_seeds}")
    _validate_devices(config)
    try:
        config.ppo.validate()
    except ValueError as err:
        raise _from_value_error("ppo", err) from None
    config = _validate_env(config)
    if build:
        _check_builds(config)
    return config


# ----------------------------------------------------------------------------- the loop


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What `train` returns.

    Attributes:
      run_dir: the run directory.
      step: env steps reached.
      exit_code: 0, or 128 + signal number when stopped by SIGINT/SIGTERM.
      summary: the final summary (also written to eval_summary.json when the run completed).
    """

    run_dir: pathlib.Path
    step: int
    exit_code: int
    summary: dict[str, Any]


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it between iterations. A second signal aborts."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handler(self, signum: int, frame: Any) -> None:
        del frame
        if self.signum is not None:
            raise KeyboardInterrupt  # second signal: stop now (checkpoints stay atomic)
        self.signum = signum


@contextlib.contextmanager
def _signal_flag() -> Iterator[_StopFlag]:
    flag = _StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be installed from the main thread
        return
    previous = {s: signal.signal(s, flag.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _to_host(metrics: Mapping[str, Any]) -> dict[str, float]:
    import jax

    return {k: float(v) for k, v in jax.device_get(dict(metrics)).items()}


class _SeedRun:
    """The host-side record of one seed's run directory: its writers, best and last evaluation.

    A run with one seed has one; a num_seeds > 1 run has one per seed, each a complete
    one-seed run directory (its config says num_seeds 1 and its own seed).
    """

    def __init__(self, config: RunConfig, run_dir: pathlib.Path, keep: int):
        self.config = config
        self.run_dir = run_dir
        self.config_json = config_lib.to_json(config)
        self.store = checkpoint_lib.CheckpointStore(run_dir, keep=keep)
        self.log: runlog.RunLog | None = None
        self.wall_offset = 0.0
        self.best_return: float | None = None
        self.best_step: int | None = None
        self.last_eval: dict[str, float] = {}
        self.last_row: dict[str, Any] = {}
        self.reached_step: int | None = None  # first step whose eval reached stop_at_eval_return

    def restore(self, template: Any, step: int | None, warn: Callable[[str], None]) -> Any:
        """Restores the checkpoint at `step` (newest when None); best return and wall time too."""
        restored = self.store.restore(template=template, step=step, warn=warn, quarantine=True)
        self.wall_offset = float(restored.meta.get("wall_s", 0.0))
        self.best_return = restored.meta.get("best_eval_return")
        self.best_step = restored.meta.get("best_step")
        best_steps = self.store.steps(best=True)
        if best_steps:  # a best checkpoint saved after the restored one still counts
            best_meta = self.store.read_json(best_steps[-1], "meta", best=True)
            if best_meta.get("eval_return") is not None and (self.best_return is None or best_meta["eval_return"] > self.best_return):
                self.best_return, self.best_step = best_meta["eval_return"], best_steps[-1]
        runlog.truncate_metrics(self.run_dir, restored.step)
        return restored.state

    def save(self, step: int, iteration: int, wall_s: float, state: Any, best: bool = False) -> None:
        meta = {
            "iteration": iteration,
            "wall_s": wall_s,
            "eval_return": self.last_eval.get("eval/episode_reward"),
            "best_eval_return": self.best_return,
            "best_step": self.best_step,
        }
        self.store.save(step, state, self.config_json, meta, best=best)

    def record_eval(self, metrics: dict[str, float], step: int, target: float) -> bool:
        """Keeps an evaluation; True when it is this seed's best so far."""
        self.last_eval = metrics
        value = metrics.get("eval/episode_reward")
        if value is not None and value >= target and self.reached_step is None:
            self.reached_step = step
        if value is not None and math.isfinite(value) and (self.best_return is None or value > self.best_return):
            self.best_return, self.best_step = value, step
            return True
        return False

    def summary(self, iteration: int, per_iteration: int, total_iterations: int, wall_s: float) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "step": iteration * per_iteration,
            "iteration": iteration,
            "num_timesteps": total_iterations * per_iteration,
            "wall_s": round(wall_s, 3),
            "train/episode_reward": self.last_row.get("train/episode_reward"),
            "train/steps_per_second": self.last_row.get("train/steps_per_second"),
            "best_eval_return": self.best_return,
            "best_step": self.best_step,
            **{k: v for k, v in self.last_eval.items()},
        }


def _newest_common_step(seed_runs: Sequence[_SeedRun]) -> int | None:
    """The newest checkpoint step that every seed directory holds (None: only one seed)."""
    if len(seed_runs) == 1:
        return None
    common = set.intersection(*(set(r.store.steps()) for r in seed_runs))
    if not common:
        raise checkpoint_lib.CheckpointError(
            f"{seed_runs[0].run_dir.parent}: the seed directories hold no checkpoint step in common")
    return max(common)


def _seed_slice(tree: Any, index: int | None) -> Any:
    """Seed `index` of a stacked tree (index None: the tree of a one-seed run, unchanged)."""
    import jax

    return tree if index is None else jax.tree.map(lambda x: x[index], tree)


def _stack_on_host(*leaves: Any) -> Any:
    """The seeds' restored leaves stacked on a new leading axis, in numpy: `jnp.stack` would
    compile one small program per leaf shape. Uncommitted, as the leaves of a fresh init."""
    import jax
    import numpy as np

    if jax.dtypes.issubdtype(leaves[0].dtype, jax.dtypes.prng_key):
        data = np.stack([np.asarray(jax.random.key_data(x)) for x in leaves])
        return jax.random.wrap_key_data(jax.device_put(data), impl=jax.random.key_impl(leaves[0]))
    return jax.device_put(np.stack([np.asarray(x) for x in leaves]))


@functools.cache
def _state_slicer() -> Callable[[Any, Any], Any]:
    """The jitted `(tree, index) -> tree[index]`, built once (JAX is imported on first use)."""
    import jax

    return jax.jit(lambda tree, i: jax.tree.map(lambda x: x[i], tree))


def _seed_state(state: Any, index: int | None) -> Any:
    """Seed `index` of a stacked TrainState on the device, in one jitted program for all its
    leaves and seeds (indexing leaf by leaf compiles a small program per leaf shape and index)."""
    return state if index is None else _state_slicer()(state, index)


def _eval_keys(eval_key: Any, iteration: int, multi: bool) -> Any:
    """The evaluation key(s) of an iteration: fold_in(eval_key, iteration), per seed when multi."""
    import jax

    if multi:
        return jax.vmap(jax.random.fold_in, in_axes=(0, None))(eval_key, iteration)
    return jax.random.fold_in(eval_key, iteration)


def _precompile(trainer: Any, config: RunConfig, eval_key: Any, evaluates: bool) -> dict[str, Any]:
    """Starts compiling the training iteration (and the evaluation, if the run `evaluates`) in
    background threads from the state's shapes (`jax.eval_shape` of init), so that they compile
    beside init or restore and beside each other; {} with several processes (XLA may coordinate
    their compiles across processes, so each must compile in the same order).
    Returns {'iteration': Precompile, 'evaluate': Precompile} (the latter only if `evaluates`).

    Otherwise each program compiles when first called: the first evaluation (tens of seconds for
    an MJX robot on a GPU) would stall the run between two training iterations.
    """
    import jax

    from jaxhum.rl import parallel

    if jax.process_count() > 1:
        return {}
    shapes = jax.eval_shape(trainer.init, train_keys(config)[0])
    compiles = {"iteration": parallel.Precompile(trainer.iteration, shapes)}
    if evaluates:
        keys = _eval_keys(eval_key, 0, config.num_seeds > 1)
        compiles["evaluate"] = parallel.Precompile(trainer.evaluate, shapes, keys)
    return compiles


def _unstacked(template: Any) -> Any:
    """A one-seed state template from a stacked one (drops the leading seed axis)."""
    import jax

    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), template)


def train(
    config: RunConfig,
    run_dir: str | os.PathLike,
    resume: bool = False,
    progress: str = "auto",
    trainer: Any | None = None,
    precompile: bool | None = None,
) -> RunResult:
    """Trains (or resumes) a run in `run_dir`, writing every artifact there.

    With num_seeds K > 1, the K seeds train in one jitted program and each writes its own
    complete run directory `run_dir/seed_<S>` (`runs.seed_run_dirs`); `run_dir/seeds.json`
    holds the group's config. Resume restores every seed at the newest checkpoint step that all
    seed directories hold.

    Args:
      config: a validated RunConfig (see `validate`).
      run_dir: the run directory (created if needed). With `resume`, the newest complete
        checkpoint in `run_dir/checkpoints` is restored first.
      resume: continue from run_dir's checkpoints.
      progress: 'auto', 'bar', 'lines' or 'none'.
      trainer: a prebuilt `make_train` result for this config (built when None).
      precompile: compile the iteration and the evaluation in background threads beside init
        (`_precompile`); None (default) does so unless the devices are CPUs, where those
        compiles would share the cores with init's compile and with training itself.
    Returns:
      RunResult; exit_code is 128 + signum when a signal stopped the run (after a checkpoint).
      For K > 1, its summary holds the first seed's figures and `seeds`, every seed's summary.
    """
    import jax

    from jaxhum.rl import parallel

    # Wall time counts from here: building the trainer and every compile are part of the run.
    start_time = time.monotonic()
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if trainer is None:
        mesh = parallel.make_mesh(config.devices or "all")
        trainer = build_trainer(config) if mesh is None else build_trainer(config, mesh=mesh)
    per_iteration = steps_per_iteration(config)
    total_iterations = num_iterations(config)
    log_every = every_iterations(config, config.log_every)
    eval_every = every_iterations(config, config.eval_every)
    checkpoint_every = every_iterations(config, config.checkpoint_every)
    train_key, eval_key = train_keys(config)
    multi = config.num_seeds > 1
    # A compile that failed in the background runs again at the program's first call, and fails there.
    if precompile is None:
        precompile = jax.default_backend() != "cpu"
    precompiled = _precompile(trainer, config, eval_key, eval_every > 0) if precompile else {}
    seed_runs = [_SeedRun(seed_config(config, s, d) if multi else config, d, config.keep_checkpoints)
                 for s, d in zip(seeds_of(config), seed_run_dirs(config, run_dir))]
    indices: list[int | None] = list(range(len(seed_runs))) if multi else [None]

    messages: list[str] = []
    if resume:
        template = state_template(trainer, config)
        step = _newest_common_step(seed_runs)
        parts = [r.restore(_unstacked(template) if multi else template, step, messages.append) for r in seed_runs]
        state = jax.tree.map(_stack_on_host, *parts) if multi else parts[0]
    else:  # a fine-tuned run starts from init_from's policy, value and normalizer (resume ignores it)
        state = finetune.init_state(trainer, config, train_key) if config.init_from else trainer.init(train_key)
    start_iteration = int(jax.device_get(state.iteration).max())
    if multi:
        runlog.write_json(run_dir / SEEDS_FILE, {"config": config_lib.to_json(config),
                                                 "seed_run_dirs": [r.run_dir.name for r in seed_runs]})
    for i, r in enumerate(seed_runs):
        r.run_dir.mkdir(parents=True, exist_ok=True)
        runlog.write_json(r.run_dir / "config.json", r.config_json)
        # One progress display for the group: the first seed's.
        r.log = runlog.RunLog(r.run_dir, total_iterations * per_iteration, start_iteration * per_iteration,
                              progress if i == 0 else "none")
    log = seed_runs[0].log
    for text in messages:
        print(f"warning: {text}", file=sys.stderr, flush=True)
    if resume:
        log.message(f"resumed {run_dir} at step {start_iteration * per_iteration}")
    if config.init_from:
        log.message(f"init_from {config.init_from} ignored: a resumed run continues from its own checkpoint" if resume
                    else f"fine-tuning from {config.init_from}: its policy, value and normalizer")

    iteration = start_iteration
    # Throughput is measured from the end of the first iteration (which includes compilation).
    rate_mark: tuple[float, int] | None = None

    def wall(r: _SeedRun) -> float:
        return r.wall_offset + time.monotonic() - start_time

    def save_all(it: int, state: Any) -> None:
        for r, index in zip(seed_runs, indices):
            r.save(it * per_iteration, it, wall(r), _seed_state(state, index))

    exit_code = 0
    # Calling a program before its background compile is over would compile it a second time.
    if "iteration" in precompiled:
        precompiled.pop("iteration").wait()
    try:
        with _signal_flag() as stop:
            while iteration < total_iterations and stop.signum is None:
                state, metrics = trainer.iteration(state)
                iteration += 1
                if rate_mark is None:
                    jax.block_until_ready(state)
                    rate_mark = (time.monotonic(), iteration)
                final = iteration == total_iterations
                evaluate = eval_every > 0 and (iteration % eval_every == 0 or final)
                if evaluate or iteration % log_every == 0 or final:
                    host_metrics = jax.device_get(dict(metrics))  # waits for the iteration to finish
                    now = time.monotonic()
                    if iteration > rate_mark[1]:
                        rate = (iteration - rate_mark[1]) * per_iteration / (now - rate_mark[0])
                    else:  # the first iteration of this process: the figure includes compilation
                        rate = (iteration - start_iteration) * per_iteration / (now - start_time)
                    evals = None
                    if evaluate:
                        if "evaluate" in precompiled:
                            precompiled.pop("evaluate").wait()
                        evals = jax.device_get(dict(trainer.evaluate(state, _eval_keys(eval_key, iteration, multi))))
                    step = iteration * per_iteration
                    for r, index in zip(seed_runs, indices):
                        row = _to_host(_seed_slice(host_metrics, index))
                        row["train/steps_per_second"] = rate  # this seed's own env steps
                        is_best = False
                        if evals is not None:
                            last_eval = _to_host(_seed_slice(evals, index))
                            row.update(last_eval)
                            is_best = r.record_eval(last_eval, step, config.stop_at_eval_return)
                        r.last_row = r.log.log(step, wall(r), row)
                        if is_best:
                            r.save(step, iteration, wall(r), _seed_state(state, index), best=True)
                    if evals is not None and not final and all(r.reached_step is not None for r in seed_runs):
                        final = True
                        total_iterations = iteration
                        log.message(f"eval return reached stop_at_eval_return {config.stop_at_eval_return} "
                                    f"at step {step}" + (" on every seed" if multi else ""))
                    rate_mark = (time.monotonic(), iteration)  # evaluation and saving are not training
                if iteration % checkpoint_every == 0 or final:
                    save_all(iteration, state)
                    rate_mark = (time.monotonic(), iteration)
            if stop.signum is not None and iteration < total_iterations:
                save_all(iteration, state)
                exit_code = 128 + stop.signum
                name = signal.Signals(stop.signum).name
                where = run_dir / checkpoint_lib.CHECKPOINT_DIR if not multi else run_dir / "seed_*" / checkpoint_lib.CHECKPOINT_DIR
                log.message(f"stopped by {name} at step {iteration * per_iteration}; checkpoint saved in "
                            f"{where}; continue with --resume {run_dir}")
    finally:
        for r in seed_runs:
            if r.log is not None:
                r.log.close()
            r.store.close()

    summaries = []
    for r in seed_runs:
        summary = r.summary(iteration, per_iteration, total_iterations, wall(r))
        if exit_code == 0 and iteration > start_iteration:
            runlog.write_json(r.run_dir / "eval_summary.json", summary)
        elif exit_code == 0 and (r.run_dir / "eval_summary.json").exists():
            summary = {**summary, **runlog.read_json(r.run_dir / "eval_summary.json"), "wall_s": summary["wall_s"]}
        summaries.append(summary)
    summary = dict(summaries[0])
    if multi:
        summary.update(run_dir=str(run_dir), seeds=summaries)
    return RunResult(run_dir=run_dir, step=iteration * per_iteration, exit_code=exit_code, summary=summary)


# ----------------------------------------------------------------------------- command line


class UsageError(Exception):
    """A bad command line (unknown flag, missing value): one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(message)


# Convenience flags: each is a plain alias of an override on one config field.
_FLAG_FIELDS = {
    "seed": "seed",
    "num_envs": "ppo.num_envs",
    "num_timesteps": "num_timesteps",
    "out": "out_dir",
    "checkpoint_every": "checkpoint_every",
    "num_seeds": "num_seeds",
}


def make_parser(name: str, presets: Sequence[str]) -> argparse.ArgumentParser:
    """The command line shared by every experiment module."""
    parser = _Parser(
        prog=f"python -m experiments.{name}",
        description=f"Train {name} with PPO. Any config field can be set with --set field=value "
        "(or a bare field=value), e.g. ppo.learning_rate=1e-4 num_timesteps=2000000.",
    )
    parser.add_argument("--preset", choices=list(presets), help="config preset (default: by JAX backend)")
    parser.add_argument("--seed", type=str, help="alias of seed=S")
    parser.add_argument("--num-envs", type=str, help="alias of ppo.num_envs=N")
    parser.add_argument("--num-timesteps", type=str, help="alias of num_timesteps=T")
    parser.add_argument("--out", type=str, help="run directory (alias of out_dir=DIR)")
    parser.add_argument("--checkpoint-every", type=str, help="alias of checkpoint_every=N (env steps)")
    parser.add_argument("--num-seeds", type=str, help="alias of num_seeds=K: seeds S..S+K-1 in one program, "
                        "each in DIR/seed_<S>")
    parser.add_argument("--resume", type=str, metavar="DIR", help="continue the run in DIR from its newest checkpoint")
    parser.add_argument("--progress", choices=runlog.PROGRESS_MODES, default="auto",
                        help="progress output (auto: a bar on a terminal unless CI is set)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field (repeatable)")
    parser.add_argument("positional", nargs="*", metavar="FIELD=VALUE", help="same as --set")
    parser.add_argument("--print-config", action="store_true", help="print the config as JSON and exit")
    return parser


def _overrides_from_args(args: argparse.Namespace) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for flag, field in _FLAG_FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides[field] = value
    overrides.update(config_lib.parse_overrides(list(args.overrides) + list(args.positional)))
    return overrides


def default_run_dir(config: RunConfig) -> pathlib.Path:
    """runs/<env_name>/<UTC timestamp>-s<seed> (-s<first>-<last seed> with num_seeds > 1)."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    seeds = f"{config.seed}" if config.num_seeds == 1 else f"{config.seed}-{config.seed + config.num_seeds - 1}"
    return pathlib.Path("runs") / config.env_name / f"{stamp}-s{seeds}"


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A checked command line: the config to run, where, and whether it resumes."""

    config: RunConfig
    run_dir: pathlib.Path
    resume: bool
    progress: str
    print_only: bool


def prepare(
    get_config: Callable[[str | None], RunConfig],
    argv: Sequence[str] | None,
    name: str,
    presets: Sequence[str],
) -> Prepared:
    """Parses and checks a command line, and builds its task; compiles and writes nothing.

    Building the task (loading its model) is part of the check: a bad `env.model_path` is
    refused here. The same holds for `--resume` (the saved config's task is built).

    Raises:
      ConfigError / CheckpointError / UsageError: bad input, one line each.
    """
    args = make_parser(name, presets).parse_intermixed_args(argv)
    overrides = _overrides_from_args(args)
    if args.resume is None:
        config = config_lib.apply_overrides(get_config(args.preset), overrides)
        config = validate(config)
        run_dir = pathlib.Path(config.out_dir) if config.out_dir else default_run_dir(config)
        if run_dir.exists() and not run_dir.is_dir():
            raise ConfigError("out_dir", f"{run_dir} is a file, not a directory; choose another --out")
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError("out_dir", f"{run_dir} already exists and is not empty; "
                              f"continue it with --resume {run_dir} or choose another --out")
        if config.init_from:  # shapes checked against the source checkpoint; compiles nothing
            finetune.check_config(config)
        config = dataclasses.replace(config, out_dir=str(run_dir))
        return Prepared(config, run_dir, False, args.progress, args.print_config)

    if args.preset is not None:
        raise ConfigError("--preset", "cannot be combined with --resume (the run's saved config is used)")
    resume_dir = pathlib.Path(args.resume)
    if not resume_dir.is_dir():
        raise ConfigError("--resume", f"{resume_dir} does not exist or is not a directory")
    saved = _saved_group_config(resume_dir) if (resume_dir / SEEDS_FILE).is_file() else None
    for seed_dir in seed_run_dirs(saved, resume_dir) if saved is not None else [resume_dir]:
        store = checkpoint_lib.CheckpointStore(seed_dir, read_only=True)
        try:
            if not store.steps():
                raise ConfigError("--resume", f"{seed_dir} holds no complete checkpoint "
                                  f"(nothing under {seed_dir / checkpoint_lib.CHECKPOINT_DIR})")
            if saved is None:
                saved = saved_config(store)
        finally:
            store.close()
    config = config_lib.apply_overrides(saved, overrides)
    for field, old, new in config_lib.diff(saved, config):
        top = field.split(".")[0]
        if top not in RESUMABLE_FIELDS:
            raise ConfigError(field, f"cannot be changed on resume (saved {old!r}, given {new!r}); "
                              f"allowed on resume: {', '.join(RESUMABLE_FIELDS)}")
    config = validate(config)
    run_dir = resume_dir
    if "out_dir" in overrides and pathlib.Path(overrides["out_dir"]).resolve() != resume_dir.resolve():
        raise ConfigError("out_dir", "a resumed run continues in its own directory (copy the directory to fork a run)")
    config = dataclasses.replace(config, out_dir=str(run_dir))
    return Prepared(config, run_dir, True, args.progress, args.print_config)


def _saved_group_config(run_dir: pathlib.Path) -> RunConfig:
    """The config of a num_seeds > 1 run from its seeds.json."""
    try:
        data = runlog.read_json(run_dir / SEEDS_FILE)["config"]
        return config_lib.from_json(RunConfig, data)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError("--resume", f"{run_dir / SEEDS_FILE} is unreadable ({type(err).__name__}: {err})") from None


def _print_summary(result: RunResult) -> None:
    if "seeds" in result.summary:
        for seed_summary in result.summary["seeds"]:
            _print_summary(dataclasses.replace(result, run_dir=pathlib.Path(seed_summary["run_dir"]), summary=seed_summary))
        return
    s = result.summary
    lines = [f"run directory: {result.run_dir}", f"env steps: {s['step']} of {s['num_timesteps']}, wall {s['wall_s']:.1f} s"]
    if s.get("eval/episode_reward") is not None:
        lines.append(f"final eval return: {s['eval/episode_reward']:.2f} (episode length {s.get('eval/episode_length', float('nan')):.0f})")
    if s.get("best_eval_return") is not None:
        lines.append(f"best eval return: {s['best_eval_return']:.2f} at step {s['best_step']}")
    if s.get("train/steps_per_second") is not None:
        lines.append(f"training speed: {s['train/steps_per_second']:,.0f} env steps/s")
    lines.append(f"load the policy: jaxhum.checkpoint.load_policy({str(result.run_dir)!r})")
    print("\n".join(lines), flush=True)


def _has_checkpoint(run_dir: pathlib.Path) -> bool:
    store = checkpoint_lib.CheckpointStore(run_dir, read_only=True)
    try:
        return bool(store.steps())
    except Exception:  # only decides whether to suggest --resume
        return False
    finally:
        store.close()


def _os_error_line(err: OSError) -> str:
    code = errno.errorcode.get(err.errno, "") if err.errno is not None else ""
    return " ".join(f"{err.filename or 'run'}: {code + ': ' if code else ''}{err.strerror or err}".split())


def run_cli(
    get_config: Callable[[str | None], RunConfig],
    argv: Sequence[str] | None = None,
    name: str = "experiment",
    presets: Sequence[str] = ("cpu", "gpu"),
) -> int:
    """Entry point of `python -m experiments.<name>`; returns the process exit status.

    Bad input prints `error: <field>: <constraint>` on stderr and returns 2, before anything
    is compiled or written. A write that fails while training (a checkpoint save hitting a full
    disk or a permission error) prints one `error:` line naming the path and returns 1; the
    checkpoints saved before are intact and `--resume` continues from the newest.
    """
    try:
        prepared = prepare(get_config, argv, name, presets)
    except (ConfigError, checkpoint_lib.CheckpointError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if prepared.print_only:
        print(config_lib.dumps(prepared.config))
        return 0
    try:
        result = train(prepared.config, prepared.run_dir, resume=prepared.resume, progress=prepared.progress)
    except (checkpoint_lib.CheckpointSaveError, OSError) as err:
        # A fault of the machine (disk full, permission denied), not of the input: status 1.
        # Nothing saved before is lost; the run continues from its newest checkpoint once fixed.
        where = f"; continue with --resume {prepared.run_dir}" if _has_checkpoint(prepared.run_dir) else ""
        text = err if isinstance(err, checkpoint_lib.CheckpointError) else _os_error_line(err)
        print(f"error: {text}{where}", file=sys.stderr)
        return 1
    except checkpoint_lib.CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted twice; stopped without a final checkpoint (the previous ones are intact)",
              file=sys.stderr)
        return 130
    if result.exit_code == 0:
        _print_summary(result)
    return result.exit_code


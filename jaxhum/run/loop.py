"""The host training loop: restore or init, iterate, log, evaluate, checkpoint.

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

import contextlib
import dataclasses
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

from jaxhum import config as config_lib
from jaxhum.run import checkpoint as checkpoint_lib
from jaxhum.run import finetune
from jaxhum.run import log as runlog
from jaxhum.run.config import (
    SEEDS_FILE,
    RunConfig,
    build_trainer,
    every_iterations,
    num_iterations,
    seed_config,
    seed_run_dirs,
    seeds_of,
    state_template,
    steps_per_iteration,
    train_keys,
)


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

"""The host training loop: restore or init, iterate, log, evaluate, checkpoint.

The host loop only does I/O. Each pass calls the jitted `trainer.iteration(state)` once; every
`log_every` env steps it pulls the metrics to the host; every `eval_every` it evaluates (and
logs) with the key `fold_in(eval_key, iteration)` (the eval key is split from the seed once, so
evaluation never touches the training key stream); every `checkpoint_every` it saves the complete
TrainState. SIGINT/SIGTERM set a flag that is checked between iterations: the loop then saves
a checkpoint and returns 128 + signal number. On a GPU, the iteration's and the evaluation's
programs compile in background threads (`jaxhum.rl.parallel.Precompile`, from the state's shapes)
while init compiles and runs (or a checkpoint is restored), instead of one after the other, the
evaluation's stalling the run at its first evaluation. A program that compiles at its first call
(on CPU: all of them) is announced first ("compiling the training iteration ..."), so a run is not
silent while it compiles; steps/s and the ETA count the training iterations alone
(`runlog.TrainingClock`: neither the first iteration, which is mostly compiling, nor evaluations
and saves). Compiled programs are kept in the persistent compilation cache
(`jaxhum.run.compile_cache`, `RunConfig.compile_cache`), turned on before anything compiles, so
a second run of the same config loads them; the run announces its phases on stderr
(`phase: compiling`, then `phase: training from step S` with what the cache loaded and saved).

`train` reads as the outer loop; `_Run` holds the run's host-side state and its named parts
(init or restore, open the logs, iterate, one log point, evaluate, save, summarize).

With `num_seeds` K > 1 one program trains K seeds and the loop writes K run directories
(`run_dir/seed_<S>`, each a complete one-seed run); with more than one device the env batch and
the minibatches are split over them (`jaxhum.rl.parallel`).

Cadences are given in env steps and rounded to whole iterations of
`ppo.num_envs * ppo.unroll_length` env steps (at least one iteration); for an off-policy run
(`algorithm` sac or td3) an iteration is `off_policy.num_envs` env steps.
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
from jaxhum.run import compile_cache as cache_lib
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
            best_return = best_meta.get("eval_return")
            if best_return is not None and (self.best_return is None or best_return > self.best_return):
                self.best_return, self.best_step = best_return, best_steps[-1]
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

    def record_eval(self, metrics: dict[str, float], step: int, target: float | None) -> bool:
        """Keeps an evaluation; True when it is this seed's best so far."""
        self.last_eval = metrics
        value = metrics.get("eval/episode_reward")
        if value is not None and target is not None and value >= target and self.reached_step is None:
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


def _make_trainer(config: RunConfig) -> Any:
    """The config's trainer, its env batch split over the devices when there are several."""
    from jaxhum.rl import parallel

    mesh = parallel.make_mesh(config.devices or "all")
    return build_trainer(config) if mesh is None else build_trainer(config, mesh=mesh)


_COMPILING = "compiling {} (first call; cached compiles are faster)..."


class _Run:
    """The host-side state of one `train` call: its cadences, keys, seed directories and clocks.

    Iterations are counted in `iteration` (of the whole run, restored on resume); `end` is the
    last one, earlier than the configured length once every seed reached stop_at_eval_return.

    Args:
      config: the validated RunConfig.
      run_dir: the run directory (exists).
      trainer: the `make_train` bundle for config.
      progress: 'auto', 'bar', 'lines' or 'none'.
      precompile: compile the iteration and the evaluation in background threads (`_precompile`).
      start_time: `time.monotonic()` when the run began (wall time counts from there).
      cache_dir: the persistent compile cache in use (`compile_cache.enable`; None: none).
    """

    def __init__(self, config: RunConfig, run_dir: pathlib.Path, trainer: Any, progress: str,
                 precompile: bool, start_time: float, cache_dir: pathlib.Path | None = None):
        self.config, self.run_dir, self.trainer, self.progress = config, run_dir, trainer, progress
        self.start_time = start_time
        self.per_iteration = steps_per_iteration(config)
        self.end = num_iterations(config)
        self.log_every = every_iterations(config, config.log_every)
        self.eval_every = every_iterations(config, config.eval_every)
        self.checkpoint_every = every_iterations(config, config.checkpoint_every)
        self.train_key, self.eval_key = train_keys(config)
        self.multi = config.num_seeds > 1
        # A compile that failed in the background runs again at the program's first call, and fails there.
        self.compiles = _precompile(trainer, config, self.eval_key, self.eval_every > 0) if precompile else {}
        self.seeds = [_SeedRun(seed_config(config, s, d) if self.multi else config, d, config.keep_checkpoints)
                      for s, d in zip(seeds_of(config), seed_run_dirs(config, run_dir))]
        self.indices: list[int | None] = list(range(len(self.seeds))) if self.multi else [None]
        self.start_iteration = self.iteration = 0
        self.clock = runlog.TrainingClock()  # training alone: steps/s and the ETA
        self.evaluated = False  # whether this process has evaluated yet
        self.warnings: list[str] = []  # from restore, printed once the logs are open
        self.log: runlog.RunLog | None = None  # the first seed's: the group's one progress display
        self.cache_dir = cache_dir
        self.exit_code = 0

    @property
    def step(self) -> int:
        return self.iteration * self.per_iteration

    def wall(self, r: _SeedRun) -> float:
        return r.wall_offset + time.monotonic() - self.start_time

    # ------------------------------------------------------------------------- restore or init

    def init(self) -> Any:
        """A fresh TrainState; a fine-tuned run starts from init_from's policy, value and normalizer."""
        import jax

        runlog.note("initialising the training state (compiling init; cached compiles are faster)...", self.progress)
        if self.config.init_from:
            state = finetune.init_state(self.trainer, self.config, self.train_key)
        else:
            state = self.trainer.init(self.train_key)
        self.start_iteration = self.iteration = int(jax.device_get(state.iteration).max())
        return state

    def restore(self) -> Any:
        """Every seed's newest checkpoint (the newest step all seed directories hold), stacked."""
        import jax

        template = state_template(self.trainer, self.config)
        step = _newest_common_step(self.seeds)
        one = _unstacked(template) if self.multi else template
        parts = [r.restore(one, step, self.warnings.append) for r in self.seeds]
        state = jax.tree.map(_stack_on_host, *parts) if self.multi else parts[0]
        self.start_iteration = self.iteration = int(jax.device_get(state.iteration).max())
        return state

    def open_logs(self, resume: bool) -> None:
        """Writes the config(s) and opens each seed's RunLog; prints the restore's warnings."""
        if self.multi:
            runlog.write_json(self.run_dir / SEEDS_FILE, {"config": config_lib.to_json(self.config),
                                                          "seed_run_dirs": [r.run_dir.name for r in self.seeds]})
        total, start = self.end * self.per_iteration, self.step
        for i, r in enumerate(self.seeds):
            r.run_dir.mkdir(parents=True, exist_ok=True)
            runlog.write_json(r.run_dir / "config.json", r.config_json)
            r.log = runlog.RunLog(r.run_dir, total, start, self.progress if i == 0 else "none")
        self.log = self.seeds[0].log
        for text in self.warnings:
            print(f"warning: {text}", file=sys.stderr, flush=True)
        if resume:
            self.log.message(f"resumed {self.run_dir} at step {self.step}")
        if self.config.init_from:
            self.log.message(f"init_from {self.config.init_from} ignored: a resumed run continues from its own "
                             "checkpoint" if resume else f"fine-tuning from {self.config.init_from}: its policy, "
                             "value and normalizer")

    # ------------------------------------------------------------------------- iterate

    def iterate(self, state: Any, stop: _StopFlag) -> Any:
        """Trains until the end or a signal; logs, evaluates and saves on their cadences."""
        import jax

        self._before_first_call("iteration", "the training iteration", note=self.iteration < self.end)
        while self.iteration < self.end and stop.signum is None:
            state, metrics = self.trainer.iteration(state)
            self.iteration += 1
            if not self.clock.started:  # the first iteration's time is mostly compiling
                jax.block_until_ready(state)
                self.clock.start(self.step)
                self._announce_training()
            evaluate = self.eval_every > 0 and (self.iteration % self.eval_every == 0 or self.iteration == self.end)
            if evaluate or self.iteration % self.log_every == 0 or self.iteration == self.end:
                self._log_point(state, metrics, evaluate)  # may end the run here (stop_at_eval_return)
                self.clock.start(self.step)  # evaluation and saving are not training
            if self.iteration % self.checkpoint_every == 0 or self.iteration == self.end:
                self.save_all(state)
                self.clock.start(self.step)
        return state

    def _announce_training(self) -> None:
        """`phase: training from step S`, with the time to this first iteration and the cache's counts."""
        cache = cache_lib.stats()  # this process's counts
        where = "no compile cache" if self.cache_dir is None else (
            f"compile cache {self.cache_dir}: {cache.hits} programs loaded, {cache.writes} compiled and saved")
        self.log.phase("training", self.step,
                       f"first iteration done {time.monotonic() - self.start_time:.1f} s after the run began; {where}")

    def _before_first_call(self, name: str, what: str, note: bool = True) -> None:
        """Waits for program `name`'s background compile; without one, notes that its first call compiles."""
        compiling = self.compiles.pop(name, None)
        if compiling is not None:  # calling it before the compile is over would compile it a second time
            compiling.wait()
        elif note:
            self.log.note(_COMPILING.format(what))

    def _log_point(self, state: Any, metrics: Mapping[str, Any], evaluate: bool) -> None:
        """One row per seed (training metrics, steps/s, the evaluation when `evaluate`); best checkpoints."""
        import jax

        host_metrics = jax.device_get(dict(metrics))  # waits for the iteration to finish
        rate = self.clock.lap(self.step)
        if rate is None:  # the first iteration of this process: the figure includes compilation
            rate = (self.iteration - self.start_iteration) * self.per_iteration / (time.monotonic() - self.start_time)
        evals = self._evaluate(state) if evaluate else None
        for r, index in zip(self.seeds, self.indices):
            row = _to_host(_seed_slice(host_metrics, index))
            row["train/steps_per_second"] = rate  # this seed's own env steps
            is_best = False
            if evals is not None:
                last_eval = _to_host(_seed_slice(evals, index))
                row.update(last_eval)
                is_best = r.record_eval(last_eval, self.step, self.config.stop_at_eval_return)
            r.last_row = r.log.log(self.step, self.wall(r), row, train_rate=self.clock.rate())
            if is_best:
                r.save(self.step, self.iteration, self.wall(r), _seed_state(state, index), best=True)
        if evals is not None and self.iteration < self.end and all(r.reached_step is not None for r in self.seeds):
            self.end = self.iteration
            self.log.message(f"eval return reached stop_at_eval_return {self.config.stop_at_eval_return} "
                             f"at step {self.step}" + (" on every seed" if self.multi else ""))

    def _evaluate(self, state: Any) -> Any:
        """The evaluation metrics on the host, with the key fold_in(eval_key, iteration)."""
        import jax

        if not self.evaluated:
            self._before_first_call("evaluate", "the evaluation")
            self.evaluated = True
        keys = _eval_keys(self.eval_key, self.iteration, self.multi)
        return jax.device_get(dict(self.trainer.evaluate(state, keys)))

    # ------------------------------------------------------------------------- checkpoint and finish

    def save_all(self, state: Any) -> None:
        for r, index in zip(self.seeds, self.indices):
            r.save(self.step, self.iteration, self.wall(r), _seed_state(state, index))

    def save_if_stopped(self, state: Any, stop: _StopFlag) -> None:
        """After SIGINT/SIGTERM: saves a checkpoint and sets the exit code 128 + signal number."""
        if stop.signum is None or self.iteration >= self.end:
            return
        self.save_all(state)
        self.exit_code = 128 + stop.signum
        name = signal.Signals(stop.signum).name
        where = (self.run_dir / "seed_*" if self.multi else self.run_dir) / checkpoint_lib.CHECKPOINT_DIR
        self.log.message(f"stopped by {name} at step {self.step}; checkpoint saved in {where}; "
                         f"continue with --resume {self.run_dir}")

    def close(self) -> None:
        for r in self.seeds:
            if r.log is not None:
                r.log.close()
            r.store.close()

    def result(self) -> RunResult:
        """Every seed's summary (eval_summary.json, written once a run completes) and the RunResult."""
        summaries = [self._summary(r) for r in self.seeds]
        summary = dict(summaries[0])
        if self.multi:
            summary.update(run_dir=str(self.run_dir), seeds=summaries)
        return RunResult(run_dir=self.run_dir, step=self.step, exit_code=self.exit_code, summary=summary)

    def _summary(self, r: _SeedRun) -> dict[str, Any]:
        summary = r.summary(self.iteration, self.per_iteration, self.end, self.wall(r))
        path = r.run_dir / "eval_summary.json"
        if self.exit_code == 0 and self.iteration > self.start_iteration:
            runlog.write_json(path, summary)
        elif self.exit_code == 0 and path.exists():  # a finished run resumed: its summary stands
            summary = {**summary, **runlog.read_json(path), "wall_s": summary["wall_s"]}
        return summary


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

    start_time = time.monotonic()  # wall time counts from here: building the trainer and compiles are the run's
    cache_dir = cache_lib.enable(config.compile_cache)  # before the trainer's first compile
    runlog.announce_phase("compiling", progress)
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = _make_trainer(config) if trainer is None else trainer
    precompile = jax.default_backend() != "cpu" if precompile is None else precompile
    run = _Run(config, run_dir, trainer, progress, precompile, start_time, cache_dir)
    try:
        state = run.restore() if resume else run.init()
        run.open_logs(resume)
        with _signal_flag() as stop:
            state = run.iterate(state, stop)
            run.save_if_stopped(state, stop)
    finally:
        run.close()
    return run.result()

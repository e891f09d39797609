"""Orbax checkpoints of the complete training state, with exact resume.

A run directory holds two checkpoint trees, each managed by an `orbax.checkpoint.CheckpointManager`
and named by the number of env steps taken:

    checkpoints/<step>/       the newest K checkpoints (K = `keep_checkpoints`)
    best_checkpoint/<step>/   the one checkpoint with the highest evaluation return so far

Each checkpoint has four items: `state` (every array leaf of the TrainState: policy and value
params, optimizer state, normalizer, the batched env states, the PRNG key and the iteration),
`manifest` (the tree path, shape and dtype of every leaf, so a checkpoint from another config
or network is refused naming the leaf that differs), `config` (the run config as JSON) and
`meta` (step, iteration, wall time, eval return).

Why a flat manifest rather than saving the pytree as is: Orbax cannot save zero-size arrays
(MJX data has some) nor typed PRNG keys portably. Leaves are saved as `leaf_<i>`; typed keys as
their raw uint32 `jax.random.key_data` and re-wrapped on restore; zero-size leaves are rebuilt.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a
save killed half way leaves no step behind; a checkpoint that fails to restore (corrupted) is
reported on one line and the previous one is used. Nothing already saved is ever deleted
except by the keep-newest-K policy; a corrupted checkpoint is moved to `corrupt_checkpoints/`.

Public API:
    state, config = restore(run_dir, step=None)      # TrainState pytree and RunConfig
    policy = load_policy(run_dir)                     # jitted obs -> action
    run = load_run(run_dir)                           # config, env, policy params, pure act()

Loading a run imports `jaxhum.run.config` (what a run is) and never `jaxhum.run.loop` (the training loop).
It leaves JAX's settings alone unless asked: with `compile_cache=True` it turns on the run's
persistent compilation cache (`jaxhum.run.compile_cache`, a process-wide JAX setting) before
anything compiles, as the command-line tools (evaluate, export, sim2sim, falls, robustness) do, so
they load their programs from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import logging
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxhum import config as config_lib
from jaxhum.run import compile_cache
from jaxhum.run import config as run_config

__all__ = [
    "BEST_DIR",
    "CHECKPOINT_DIR",
    "CheckpointError",
    "CheckpointSaveError",
    "CheckpointStore",
    "LoadedRun",
    "Restored",
    "load_policy",
    "load_run",
    "restore",
    "saved_config",
]

CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best_checkpoint"
CORRUPT_DIR = "corrupt_checkpoints"
_ITEMS = ("state", "manifest", "config", "meta")
_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match; the message is one line."""


class CheckpointSaveError(CheckpointError):
    """Writing a checkpoint failed (disk full, permission denied, ...); the message is one line
    that names the checkpoint directory. What the failed save wrote was removed; every
    checkpoint saved before is untouched."""


@dataclasses.dataclass(frozen=True)
class Restored:
    """What `CheckpointStore.restore` returns.

    Attributes:
      state: the training state pytree (same structure as the template).
      config: the run config as saved (a JSON dict).
      meta: step, iteration, wall_s, eval return, ... as saved (a JSON dict).
      step: env steps of this checkpoint.
    """

    state: Any
    config: dict[str, Any]
    meta: dict[str, Any]
    step: int


# ----------------------------------------------------------------------------- flattening


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _leaf_info(path: str, leaf: Any) -> dict[str, Any]:
    """Manifest entry of one leaf (an array or a ShapeDtypeStruct).

    A typed PRNG key is stored as its raw uint32 data: `data_shape` is that array's shape and
    `impl` the key implementation needed to wrap it again (unknown for a ShapeDtypeStruct).
    """
    if _is_key(leaf):
        data_shape = jax.eval_shape(jax.random.key_data, leaf).shape
        impl = str(jax.random.key_impl(leaf)) if isinstance(leaf, jax.Array) else None
        return {"path": path, "shape": list(leaf.shape), "dtype": "key", "impl": impl,
                "data_shape": list(data_shape)}
    dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
    return {"path": path, "shape": list(np.shape(leaf)), "dtype": np.dtype(dtype).name}


def _flatten(tree: Any) -> tuple[list[str], list[Any], Any]:
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [jax.tree_util.keystr(p) for p, _ in with_path]
    return paths, [leaf for _, leaf in with_path], treedef


def manifest_of(tree: Any) -> list[dict[str, Any]]:
    """Path, shape and dtype of every leaf of a pytree of arrays or ShapeDtypeStructs."""
    paths, leaves, _ = _flatten(tree)
    return [_leaf_info(p, leaf) for p, leaf in zip(paths, leaves)]


def _to_saveable(manifest: list[dict[str, Any]], leaves: list[Any]) -> dict[str, Any]:
    out = {}
    for i, (info, leaf) in enumerate(zip(manifest, leaves)):
        if info["dtype"] == "key":
            leaf = jax.random.key_data(leaf)
        if int(np.prod(info.get("data_shape", info["shape"]))) == 0:
            continue  # Orbax refuses zero-size arrays; they are rebuilt from the manifest.
        out[f"leaf_{i:05d}"] = leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf)
    return out


def _describe_mismatch(saved: list[dict[str, Any]], expected: list[dict[str, Any]]) -> str | None:
    """One line naming the first leaf that differs between two manifests, or None."""
    saved_by_path = {m["path"]: m for m in saved}
    expected_by_path = {m["path"]: m for m in expected}
    for m in expected:
        other = saved_by_path.get(m["path"])
        if other is None:
            return f"state{m['path']} is expected but not in the checkpoint"
        if other["shape"] != m["shape"]:
            return (f"state{m['path']}: checkpoint has shape {tuple(other['shape'])}, "
                    f"this config needs {tuple(m['shape'])}")
        if other["dtype"] != m["dtype"]:
            return f"state{m['path']}: checkpoint has dtype {other['dtype']}, this config needs {m['dtype']}"
    for m in saved:
        if m["path"] not in expected_by_path:
            return f"state{m['path']} is in the checkpoint but not expected by this config"
    if [m["path"] for m in saved] != [m["path"] for m in expected]:
        return "state: leaves are in a different order than this config expects"
    return None


# ----------------------------------------------------------------------------- the store


class CheckpointStore:
    """Newest-K and best checkpoints of one run directory (thin layer over Orbax managers).

    Args:
      run_dir: the run directory.
      keep: how many of the newest checkpoints to keep (older ones are deleted by Orbax).
      read_only: open existing checkpoints without creating directories.
    """

    def __init__(self, run_dir: str | os.PathLike, keep: int = 3, read_only: bool = False):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.run_dir = pathlib.Path(run_dir).absolute()
        self.keep = keep
        self.read_only = read_only
        self._managers: dict[str, Any] = {}

    def _manager(self, name: str):
        if name not in self._managers:
            ocp = self._ocp
            directory = self.run_dir / name
            if self.read_only and not directory.is_dir():
                return None
            options = ocp.CheckpointManagerOptions(
                max_to_keep=self.keep if name == CHECKPOINT_DIR else 1,
                # Read-only use opens existing directories without creating any; Orbax's own
                # read_only flag is not used because it logs warnings on every open.
                create=not self.read_only,
                # Saves are synchronous: the host loop waits, so a signal or a kill right after
                # `save` returns can never leave the newest checkpoint half written.
                enable_async_checkpointing=False,
            )
            self._managers[name] = ocp.CheckpointManager(directory, options=options, item_names=_ITEMS)
        return self._managers[name]

    def steps(self, best: bool = False) -> list[int]:
        """Complete checkpoint steps, oldest first."""
        manager = self._manager(BEST_DIR if best else CHECKPOINT_DIR)
        if manager is None:
            return []
        manager.reload()
        return sorted(manager.all_steps())

    def save(
        self,
        step: int,
        state: Any,
        config: Mapping[str, Any],
        meta: Mapping[str, Any],
        best: bool = False,
    ) -> None:
        """Writes `state` (any pytree of arrays), the config JSON and meta at `step` (env steps).

        Blocks until the checkpoint is complete on disk. Saving a step that already exists is a
        no-op (the state at a given step is deterministic).

        Raises:
          CheckpointSaveError: the write failed (e.g. ENOSPC, EACCES). Orbax writes into
            `<step>.orbax-checkpoint-tmp` and renames it only once complete, so the failed
            step never counts as a checkpoint; its temporary directory is removed here, and
            older checkpoints are untouched (none is deleted by the keep-newest-K policy).
        """
        if self.read_only:
            raise CheckpointError(f"{self.run_dir}: opened read-only, cannot save")
        name = BEST_DIR if best else CHECKPOINT_DIR
        try:
            with _orbax_errors_unlogged():
                self._save(name, int(step), state, config, meta)
        except Exception as err:  # Orbax and tensorstore raise many types
            self._discard_failed_save(name, int(step))
            raise CheckpointSaveError(
                f"{self.run_dir / name / str(step)}: checkpoint could not be written ({_describe_io_error(err)}); "
                f"the checkpoints saved before are intact") from err

    def _save(self, name: str, step: int, state: Any, config: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        ocp = self._ocp
        manager = self._manager(name)
        if step in manager.all_steps():
            return
        paths, leaves, _ = _flatten(state)
        manifest = [_leaf_info(p, leaf) for p, leaf in zip(paths, leaves)]
        arrays = _to_saveable(manifest, leaves)
        meta = {"format": _FORMAT, "step": int(step), "time": time.time(), **dict(meta)}
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(arrays),
            manifest=ocp.args.JsonSave({"leaves": manifest}),
            config=ocp.args.JsonSave(dict(config)),
            meta=ocp.args.JsonSave(meta),
        )
        manager.save(int(step), args=args, force=True)
        manager.wait_until_finished()

    def _discard_failed_save(self, name: str, step: int) -> None:
        """Drops the manager of a failed save and what the save left in its temporary directory.

        A step directory that exists was renamed into place, which Orbax does only once it is
        complete, so it is kept.
        """
        manager = self._managers.pop(name, None)
        if manager is not None:
            with contextlib.suppress(Exception):
                manager.close()
        for partial in (self.run_dir / name).glob(f"{step}.orbax-checkpoint-tmp*"):
            shutil.rmtree(partial, ignore_errors=True)

    def read_json(self, step: int, item: str, best: bool = False) -> dict[str, Any]:
        """One JSON item ('config', 'meta' or 'manifest') of a checkpoint, without its arrays."""
        ocp = self._ocp
        manager = self._manager(BEST_DIR if best else CHECKPOINT_DIR)
        return manager.restore(step, args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))[item]

    def _restore_step(self, name: str, step: int, template: Any | None, only: Sequence[str] | None) -> Restored:
        ocp = self._ocp
        manager = self._manager(name)
        small = manager.restore(
            step,
            args=ocp.args.Composite(
                manifest=ocp.args.JsonRestore(), config=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore()
            ),
        )
        manifest = small["manifest"]["leaves"]
        if template is not None:
            problem = _describe_mismatch(manifest, manifest_of(template))
            if problem is not None:
                raise _MismatchError(problem)
        sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        wanted = [only is None or _under(info["path"], only) for info in manifest]
        targets = {}
        for i, info in enumerate(manifest):
            shape = tuple(info.get("data_shape", info["shape"]))
            dtype = np.uint32 if info["dtype"] == "key" else np.dtype(info["dtype"])
            if int(np.prod(shape)) > 0 and wanted[i]:
                targets[f"leaf_{i:05d}"] = jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
        if only is None:
            arrays = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(targets)))["state"]
        elif not targets:
            arrays = {}
        else:  # the other leaves are never read (a jh1 run's env states are gigabytes)
            partial = ocp.args.PyTreeRestore(item=targets, partial_restore=True,
                                             restore_args=ocp.checkpoint_utils.construct_restore_args(targets))
            checkpointer = ocp.PyTreeCheckpointer()
            try:
                arrays = checkpointer.restore(self.run_dir / name / str(step) / "state", args=partial)
            finally:
                checkpointer.close()
        leaves = []
        for i, info in enumerate(manifest):
            name_i = f"leaf_{i:05d}"
            shape = tuple(info.get("data_shape", info["shape"]))
            dtype = np.uint32 if info["dtype"] == "key" else np.dtype(info["dtype"])
            if not wanted[i]:
                leaves.append(jax.ShapeDtypeStruct(tuple(info["shape"]), dtype))
                continue
            value = arrays[name_i] if name_i in arrays else np.zeros(shape, dtype)
            # Uncommitted on the default device, as the arrays of a fresh `trainer.init` are: a
            # committed argument would make the jitted trainer compile its iteration again.
            value = jax.device_put(np.asarray(value))
            if value.shape != shape or value.dtype != dtype:
                raise CheckpointError(f"state{info['path']}: stored array has shape {value.shape} "
                                      f"{value.dtype}, manifest says {shape} {dtype}")
            if info["dtype"] == "key":
                value = jax.random.wrap_key_data(value, impl=info["impl"])
            leaves.append(value)
        if template is not None:
            _, _, treedef = _flatten(template)
            state = jax.tree_util.tree_unflatten(treedef, leaves)
        else:
            state = {info["path"]: leaf for info, leaf in zip(manifest, leaves)}
        return Restored(state=state, config=small["config"], meta=small["meta"], step=int(step))

    def restore(
        self,
        template: Any | None = None,
        step: int | None = None,
        best: bool = False,
        warn: Callable[[str], None] | None = None,
        quarantine: bool = False,
        only: Sequence[str] | None = None,
    ) -> Restored:
        """Restores a checkpoint.

        Args:
          template: a pytree (arrays or `jax.ShapeDtypeStruct`s, e.g. from `jax.eval_shape`)
            with the structure to restore into; None gives a flat dict {leaf path: array}.
          step: the step to restore; None means the newest one that restores cleanly (a
            corrupted newest checkpoint is reported through `warn` and the previous one used).
          best: read from `best_checkpoint/` instead of `checkpoints/`.
          warn: receives one-line warnings (default: printed to stderr).
          quarantine: move a corrupted checkpoint into `corrupt_checkpoints/` (never deleted),
            so that a resumed run can write that step again.
          only: leaf path prefixes to read (e.g. ('.policy_params', '.normalizer')); every other
            leaf is left unread and comes back as a `jax.ShapeDtypeStruct` placeholder. None
            reads every leaf.
        Raises:
          CheckpointError: no checkpoint, the requested step is missing, none restores, or
            the checkpoint does not match `template` (the message names the differing leaf).
        """
        warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
        name = BEST_DIR if best else CHECKPOINT_DIR
        steps = self.steps(best=best)
        if not steps:
            raise CheckpointError(f"{self.run_dir / name}: no complete checkpoint found")
        if step is not None and step not in steps:
            raise _no_checkpoint_at(step, self.run_dir / name, steps)
        candidates = [step] if step is not None else list(reversed(steps))
        for i, candidate in enumerate(candidates):
            try:
                return self._restore_step(name, candidate, template, only)
            except _MismatchError as err:
                raise CheckpointError(f"checkpoint {candidate} does not match this config: {err}") from None
            except CheckpointError:
                raise
            except Exception as err:  # Orbax/tensorstore raise many types on a damaged file.
                reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
                path = self.run_dir / name / str(candidate)
                if i + 1 == len(candidates):
                    raise CheckpointError(f"{path}: checkpoint is corrupted ({reason})") from None
                moved = f"; moved to {self._set_aside(name, candidate)}" if quarantine and not self.read_only else ""
                warn(f"{path}: checkpoint is corrupted, using step {candidates[i + 1]} instead ({reason}){moved}")
        raise CheckpointError(f"{self.run_dir / name}: no checkpoint could be restored")

    def _set_aside(self, name: str, step: int) -> pathlib.Path:
        """Moves a corrupted checkpoint into corrupt_checkpoints/ (never deleted); returns where."""
        target = self.run_dir / CORRUPT_DIR / f"{name}-{step}-{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.run_dir / name / str(step)), str(target))
        self._manager(name).reload()
        return target

    def close(self) -> None:
        for manager in self._managers.values():
            manager.close()
        self._managers = {}


class _MismatchError(Exception):
    pass


# What acting needs of a TrainState or OffPolicyState (`jaxhum.rl.train.policy_bundle`).
POLICY_LEAVES = (".policy_params", ".normalizer")


def _under(path: str, prefixes: Sequence[str]) -> bool:
    """Whether a leaf path (`jax.tree_util.keystr`) is one of `prefixes` or inside one."""
    return any(path == p or path.startswith((p + ".", p + "[")) for p in prefixes)


def _no_checkpoint_at(step: int, directory: pathlib.Path, steps: list[int]) -> CheckpointError:
    """The error for a `step` that no checkpoint has, naming the saved steps: checkpoints fall on
    whole iterations, so a round step picked by hand usually misses."""
    return CheckpointError(f"step: no checkpoint at step {step}; saved steps: {steps} in {directory}")


@contextlib.contextmanager
def _orbax_errors_unlogged() -> Iterator[None]:
    """Keeps Orbax's own error logs (tracebacks from its writer threads, through absl's logger)
    off stderr while saving: a failed save is reported once, as the CheckpointSaveError line."""
    logger = logging.getLogger("absl")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _describe_io_error(err: BaseException) -> str:
    """One line for a failed write: the OSError inside (errno name and text) when there is one."""
    seen = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno is not None:
            code = errno.errorcode.get(cause.errno, str(cause.errno))
            where = f" on {cause.filename}" if cause.filename else ""
            return f"{code}: {cause.strerror or os.strerror(cause.errno)}{where}"
        cause = cause.__cause__ or cause.__context__
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


# ----------------------------------------------------------------------------- public API


def saved_config(store: CheckpointStore, step: int | None = None, best: bool = False) -> run_config.RunConfig:
    """The RunConfig stored with a checkpoint (newest readable one when step is None)."""
    steps = store.steps(best=best)
    if not steps:
        raise CheckpointError(f"{store.run_dir}: no complete checkpoint found")
    if step is not None and step not in steps:
        raise _no_checkpoint_at(step, store.run_dir / (BEST_DIR if best else CHECKPOINT_DIR), steps)
    candidates = [step] if step is not None else list(reversed(steps))
    last_error: Exception | None = None
    for candidate in candidates:
        try:
            data = store.read_json(candidate, "config", best=best)
        except Exception as err:  # a damaged checkpoint: try the one before
            last_error = err
            continue
        try:
            return config_lib.from_json(run_config.RunConfig, data)
        except config_lib.ConfigError as err:
            raise CheckpointError(f"saved config does not fit this version of RunConfig: {err}") from None
    raise CheckpointError(f"{store.run_dir}: no checkpoint with a readable config ({last_error})")


def restore(run_dir: str | os.PathLike, step: int | None = None, best: bool = False, *,
            compile_cache: bool = False) -> tuple[Any, Any]:
    """Loads a saved training state and its config.

    Args:
      run_dir: a run directory written by `jaxhum.run.loop` (e.g. runs/humanoid_run/<stamp>-s0).
      step: env steps of the checkpoint; None for the newest complete one. Checkpoints fall on
        whole iterations: a step that none has is refused naming the saved steps.
      best: take the checkpoint with the best evaluation return instead.
      compile_cache: turn on the run's persistent compilation cache (`RunConfig.compile_cache`)
        for this process before anything compiles; False leaves JAX's settings as they are.
    Returns:
      (state, config): the `TrainState` pytree (arrays on the default device) and the
      `RunConfig` it was trained with.
    Raises:
      CheckpointError: no such run directory or checkpoint (`step: no checkpoint at step S;
        saved steps: [...] in DIR`), or it does not restore.
    """
    restored, config = _restore(run_dir, step, best, compile_cache)
    return restored.state, config


def _restore(run_dir: str | os.PathLike, step: int | None, best: bool, use_compile_cache: bool,
             only: Sequence[str] | None = None) -> tuple[Restored, Any]:
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    store = CheckpointStore(run_dir, read_only=True)
    try:
        config = saved_config(store, step=step, best=best)
        if use_compile_cache:  # before anything compiles: the run's compile cache serves the caller too
            compile_cache.enable(config.compile_cache)
        trainer = run_config.build_trainer(config)
        restored = store.restore(template=run_config.state_template(trainer, config), step=step, best=best,
                                 only=only)
    finally:
        store.close()
    return restored, config


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A trained run, ready for evaluation, export and sim-to-sim (no training loop involved).

    Attributes:
      run_dir: the run directory.
      config: its `RunConfig`.
      step: env steps of the loaded checkpoint.
      env: the task the run is evaluated in (`run_config.build_eval_env`: the training task
        with the config's `eval_env` fields; `jaxhum.envs.Env`).
      params: the policy parameters with the observation normalizer (`PolicyParams`).
      act: `act(params, obs (..., obs_size)) -> action (..., A)`, the deterministic action
        tanh(loc) (pure; jit it at the call site), its matmuls in full float32 on any backend,
        so evaluation, sim-to-sim and export judge the policy that runs on the robot.
    """

    run_dir: pathlib.Path
    config: Any
    step: int
    env: Any
    params: Any
    act: Callable[[Any, jax.Array], jax.Array]


def load_run(run_dir: str | os.PathLike, step: int | None = None, best: bool = False, *,
             compile_cache: bool = False) -> LoadedRun:
    """Loads a run's policy and task (newest checkpoint, a given `step`, or the `best` one);
    `compile_cache` as in `restore`.

    Raises:
      CheckpointError: no such run directory or checkpoint (a `step` that none has: the
        message lists the saved steps), or it does not restore.
    """
    from jaxhum.rl.train import policy_bundle

    # The policy and its normalizer alone are read: the envs' states (gigabytes for a GPU run),
    # optimiser and critics are not needed to act.
    restored, config = _restore(run_dir, step, best, compile_cache, only=POLICY_LEAVES)
    trainer = run_config.build_trainer(config)
    return LoadedRun(
        run_dir=pathlib.Path(run_dir),
        config=config,
        step=restored.step,
        env=run_config.build_eval_env(config),
        params=policy_bundle(restored.state),
        act=functools.partial(_robot_precision_act, trainer.policy_fn),
    )


def _robot_precision_act(policy_fn: Callable[..., jax.Array], params: Any, obs: jax.Array) -> jax.Array:
    """The deterministic action with every matmul in full float32 (`precision='highest'`), as the
    exported policy computes it on a robot (numpy, onnxruntime); a GPU's default precision
    (TF32-like passes) would differ from it by ~1e-3 in the action."""
    with jax.default_matmul_precision("highest"):
        return policy_fn(params, obs, None)


def load_policy(
    run_dir: str | os.PathLike,
    step: int | None = None,
    deterministic: bool = True,
    best: bool = False,
) -> Callable[..., jax.Array]:
    """A ready-to-call jitted policy from a run directory.

    Returns:
      `policy(obs, key=None) -> action`: obs (..., obs_size) float32 -> action
      (..., action_size) in [-1, 1]; the observation normalizer saved with the params is
      applied inside, and every matmul runs in full float32 on any backend (as `load_run`'s act
      and the exported policy). With `deterministic=False` pass a PRNG key to sample. Only the
      policy and its normalizer are read from the checkpoint (not the envs' states).
    Raises:
      CheckpointError: as `restore` (a `step` that no checkpoint has: the message lists the saved steps).
    """
    restored, config = _restore(run_dir, step, best, False, only=POLICY_LEAVES)
    return run_config.make_policy(run_config.build_trainer(config), restored.state, deterministic=deterministic)

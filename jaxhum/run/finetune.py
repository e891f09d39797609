"""Fine-tuning: a new run that starts from another run's policy, value function and normalizer(s).

    python -m experiments.walk --set init_from=runs/walk/<stamp>-s0 ...

`RunConfig.init_from` names a run directory. The new run's TrainState is built as usual from
its own config and seed (`trainer.init`), then every leaf of the fields in `TRANSFERRED` that
the state has is replaced by the same leaf of that run's newest complete checkpoint. The
optimizer state, env states, PRNG key, iteration counter and curriculum start fresh.

The leaves must match exactly: `check` compares the new state's shapes (`jax.eval_shape` of its
init, nothing computed) with the checkpoint's manifest (JSON, no arrays read) and refuses the
first difference on one line naming the leaf and both shapes, before anything is compiled or
written. A resumed run restores its own checkpoint and ignores `init_from`.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax

from jaxhum.config import ConfigError
from jaxhum.run import checkpoint as checkpoint_lib
from jaxhum.run import config as run_config

__all__ = ["FIELD", "TRANSFERRED", "check", "check_config", "init_state", "source_step"]

FIELD = "init_from"
# TrainState fields taken from the source run (those the state has; the rest start fresh):
# PPO's policy, value and normalizers; SAC / TD3's actor, critics, targets and temperature.
TRANSFERRED = ("policy_params", "value_params", "normalizer", "critic_normalizer", "critic_params",
               "target_critic_params", "target_policy_params", "log_alpha")


def _transferred(path: str) -> bool:
    """Whether a leaf path such as ".policy_params['params']['Dense_0']['kernel']" is taken over."""
    name = path.lstrip(".").split("[", 1)[0].split(".", 1)[0]
    return name in TRANSFERRED


def _open(init_from: str) -> checkpoint_lib.CheckpointStore:
    run_dir = pathlib.Path(init_from)
    if not run_dir.is_dir():
        raise ConfigError(FIELD, f"{init_from} does not exist or is not a directory")
    store = checkpoint_lib.CheckpointStore(run_dir, read_only=True)
    if not store.steps():
        store.close()
        raise ConfigError(FIELD, f"{init_from} holds no complete checkpoint "
                          f"(nothing under {run_dir / checkpoint_lib.CHECKPOINT_DIR})")
    return store


def source_step(init_from: str) -> tuple[int, list[dict[str, Any]]]:
    """(step, manifest) of the newest checkpoint of `init_from` whose manifest reads.

    Raises:
      ConfigError: on `init_from`: no such directory, no complete checkpoint, none readable.
    """
    store = _open(init_from)
    try:
        for step in reversed(store.steps()):
            try:
                return step, store.read_json(step, "manifest")["leaves"]
            except Exception:  # a damaged checkpoint: the one before may do
                continue
    finally:
        store.close()
    raise ConfigError(FIELD, f"{init_from}: no checkpoint with a readable manifest")


def check(init_from: str, template: Any) -> int:
    """Checks that `init_from`'s checkpoint fits a new state; returns the checkpoint's step.

    Args:
      init_from: the source run directory.
      template: the new run's TrainState shapes (`jaxhum.run.config.state_template`).
    Raises:
      ConfigError: `init_from: state<leaf>: <dir> has shape (..), this run needs (..)` for the
        first transferred leaf that differs in shape or dtype, is missing on either side, or
        when the directory has no checkpoint.
    """
    step, manifest = source_step(init_from)
    source = {m["path"]: m for m in manifest if _transferred(m["path"])}
    target = [m for m in checkpoint_lib.manifest_of(template) if _transferred(m["path"])]
    for m in target:
        other = source.get(m["path"])
        if other is None:
            raise ConfigError(FIELD, f"state{m['path']} (shape {tuple(m['shape'])}) is needed by this run "
                              f"but not in {init_from}")
        if other["shape"] != m["shape"]:
            raise ConfigError(FIELD, f"state{m['path']}: {init_from} has shape {tuple(other['shape'])}, "
                              f"this run needs {tuple(m['shape'])}")
        if other["dtype"] != m["dtype"]:
            raise ConfigError(FIELD, f"state{m['path']}: {init_from} has dtype {other['dtype']}, "
                              f"this run needs {m['dtype']}")
    wanted = {m["path"] for m in target}
    for path, other in source.items():
        if path not in wanted:
            raise ConfigError(FIELD, f"state{path} (shape {tuple(other['shape'])}) is in {init_from} "
                              f"but not in this run")
    return step


def check_config(config: run_config.RunConfig) -> int:
    """`check` for a validated run config with `init_from` set (builds its trainer; compiles nothing)."""
    return check(config.init_from, run_config.state_template(run_config.build_trainer(config), config))


def init_state(trainer: Any, config: run_config.RunConfig, key: jax.Array) -> Any:
    """`trainer.init(key)` with the transferred leaves taken from `config.init_from`.

    Checks before anything is compiled (`check`), then restores the source's newest complete
    checkpoint (a damaged newest one is skipped, as on resume) and places each transferred
    leaf where the fresh state had its leaf (same device and sharding).
    """
    check(config.init_from, run_config.state_template(trainer, config))
    state = trainer.init(key)
    store = _open(config.init_from)
    try:
        source = store.restore().state  # {leaf path: array}
    finally:
        store.close()
    with_path, treedef = jax.tree_util.tree_flatten_with_path(state)
    leaves = []
    for path, leaf in with_path:
        name = jax.tree_util.keystr(path)
        if _transferred(name):
            # Committed only where the fresh leaf is (a mesh): an uncommitted state compiles as init's.
            leaf = jax.device_put(source[name], leaf.sharding) if leaf.committed else jax.device_put(source[name])
        leaves.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, leaves)

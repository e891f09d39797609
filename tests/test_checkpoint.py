"""CheckpointStore: exact round trip of every leaf, keep-K, best, partial and corrupted saves."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from jaxhum.run import checkpoint
from jaxhum.run.checkpoint import CheckpointError, CheckpointStore


@struct.dataclass
class _State:
    params: dict  # {'w': (3, 2) float32, 'b': (2,) float32}
    key: jax.Array  # () typed threefry key
    raw_key: jax.Array  # (2,) uint32 raw key
    empty: jax.Array  # (4, 0) float32: Orbax alone cannot save zero-size arrays
    flags: jax.Array  # (3,) bool
    iteration: jax.Array  # () int32
    half: jax.Array  # (2,) float16
    nested: tuple  # ((5,) int8, (2, 2) float32)
    name: str = struct.field(pytree_node=False, default="static")


def _state(seed: int) -> _State:
    k = jax.random.key(seed)
    k1, k2, k3 = jax.random.split(k, 3)
    return _State(
        params={"w": jax.random.normal(k1, (3, 2)), "b": jnp.array([np.nan, -0.0], jnp.float32)},
        key=k2,
        raw_key=jax.random.key_data(k3),
        empty=jnp.zeros((4, 0), jnp.float32),
        flags=jnp.array([True, False, True]),
        iteration=jnp.asarray(seed, jnp.int32),
        half=jnp.array([1.5, -2.25], jnp.float16),
        nested=(jnp.arange(5, dtype=jnp.int8), jnp.eye(2)),
    )


def _bits(x) -> tuple:
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    x = np.asarray(x)
    return x.shape, x.dtype.str, x.tobytes()


def _assert_identical(a, b) -> None:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert _bits(x) == _bits(y)


def _save(store: CheckpointStore, step: int, best: bool = False, eval_return: float | None = None) -> _State:
    state = _state(step)
    store.save(step, state, {"seed": 0}, {"iteration": step, "eval_return": eval_return}, best=best)
    return state


def test_round_trip_every_leaf_bit_for_bit(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    saved = _save(store, 7)
    template = jax.eval_shape(lambda: _state(0))
    restored = store.restore(template=template)
    store.close()
    assert restored.step == 7 and restored.config == {"seed": 0} and restored.meta["iteration"] == 7
    _assert_identical(saved, restored.state)
    assert isinstance(restored.state, _State) and restored.state.name == "static"
    assert jax.random.key_impl(restored.state.key) == jax.random.key_impl(saved.key)
    # The restored key continues the same stream.
    assert _bits(jax.random.normal(restored.state.key, (3,))) == _bits(jax.random.normal(saved.key, (3,)))


def test_restoring_only_some_leaves_reads_those_bit_for_bit_and_leaves_placeholders(tmp_path):
    """`only` (what `load_run` uses to skip a run's env states): the named subtrees restore
    exactly; every other leaf is an unread ShapeDtypeStruct of its saved shape."""
    store = CheckpointStore(tmp_path)
    saved = _save(store, 7)
    restored = store.restore(template=jax.eval_shape(lambda: _state(0)), only=(".params", ".nested[1]"))
    store.close()
    _assert_identical(saved.params, restored.state.params)
    assert _bits(restored.state.nested[1]) == _bits(saved.nested[1])
    for name in ("key", "raw_key", "empty", "flags", "iteration", "half"):
        placeholder = getattr(restored.state, name)
        assert isinstance(placeholder, jax.ShapeDtypeStruct) and placeholder.shape == getattr(saved, name).shape
    assert isinstance(restored.state.nested[0], jax.ShapeDtypeStruct)
    assert checkpoint._under(".params['w']", (".params",)) and not checkpoint._under(".paramsx", (".params",))


def test_restore_without_template_gives_flat_dict(tmp_path):
    store = CheckpointStore(tmp_path)
    saved = _save(store, 3)
    flat = store.restore().state
    store.close()
    assert set(flat) == {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(saved)[0]}
    assert _bits(flat[".iteration"]) == _bits(saved.iteration)
    assert flat[".empty"].shape == (4, 0)


def test_keeps_newest_k_and_best_separately(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    for step in (10, 20, 30, 40):
        _save(store, step)
    _save(store, 20, best=True, eval_return=5.0)
    _save(store, 40)  # saving an existing step is a no-op, not an error
    assert store.steps() == [30, 40]
    assert store.steps(best=True) == [20]
    assert store.restore(best=True).meta["eval_return"] == 5.0
    _save(store, 30, best=True, eval_return=6.0)
    assert store.steps(best=True) == [30]
    store.close()
    assert sorted(p.name for p in (tmp_path / checkpoint.CHECKPOINT_DIR).iterdir() if p.name.isdigit()) == ["30", "40"]


def test_partial_save_is_ignored(tmp_path):
    store = CheckpointStore(tmp_path)
    saved = _save(store, 10)
    store.close()
    # What a save killed half way leaves behind: Orbax's temporary directory, never renamed.
    partial = tmp_path / checkpoint.CHECKPOINT_DIR / "20.orbax-checkpoint-tmp-1700000000000000"
    (partial / "state").mkdir(parents=True)
    (partial / "state" / "garbage").write_bytes(b"\x00" * 10)
    store = CheckpointStore(tmp_path)
    assert store.steps() == [10]
    restored = store.restore(template=jax.eval_shape(lambda: _state(0)))
    store.close()
    assert restored.step == 10
    _assert_identical(saved, restored.state)
    assert partial.exists()  # never deleted


def _corrupt(step_dir: pathlib.Path) -> None:
    for path in (step_dir / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"corrupted")


def test_corrupted_newest_reported_and_previous_used(tmp_path):
    store = CheckpointStore(tmp_path)
    saved = _save(store, 10)
    _save(store, 20)
    _corrupt(tmp_path / checkpoint.CHECKPOINT_DIR / "20")
    warnings: list[str] = []
    restored = store.restore(template=jax.eval_shape(lambda: _state(0)), warn=warnings.append)
    assert restored.step == 10
    _assert_identical(saved, restored.state)
    assert len(warnings) == 1 and "20" in warnings[0] and "corrupted" in warnings[0] and "\n" not in warnings[0]
    # quarantine moves (never deletes) the damaged step so a resumed run can write it again.
    restored = store.restore(warn=warnings.append, quarantine=True)
    assert restored.step == 10 and store.steps() == [10]
    moved = list((tmp_path / checkpoint.CORRUPT_DIR).iterdir())
    assert len(moved) == 1 and (moved[0] / "state").is_dir()
    _save(store, 20)
    assert store.steps() == [10, 20]
    store.close()


def test_all_corrupted_is_an_error(tmp_path):
    store = CheckpointStore(tmp_path)
    _save(store, 10)
    _corrupt(tmp_path / checkpoint.CHECKPOINT_DIR / "10")
    with pytest.raises(CheckpointError, match="corrupted"):
        store.restore()
    store.close()


def test_mismatched_template_is_refused_naming_the_leaf(tmp_path):
    store = CheckpointStore(tmp_path)
    _save(store, 10)
    wider = jax.eval_shape(lambda: _state(0).replace(params={"w": jnp.zeros((3, 4)), "b": jnp.zeros((2,))}))
    with pytest.raises(CheckpointError, match=r"\.params\['w'\].*\(3, 2\).*\(3, 4\)"):
        store.restore(template=wider)
    other = jax.eval_shape(lambda: {"only": jnp.zeros(3)})
    with pytest.raises(CheckpointError, match="does not match"):
        store.restore(template=other)
    store.close()


def test_missing_step_and_missing_checkpoints(tmp_path):
    store = CheckpointStore(tmp_path / "run")
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        store.restore()
    _save(store, 10)
    with pytest.raises(CheckpointError, match=r"no checkpoint at step 5; saved steps: \[10\]"):
        store.restore(step=5)
    store.close()


def test_a_step_no_checkpoint_has_is_refused_listing_the_saved_steps(tmp_path):
    """Checkpoints fall on whole iterations, so a round step picked by hand usually misses:
    restore, load_run and load_policy all name the steps that exist (before reading any config)."""
    store = CheckpointStore(tmp_path)
    _save(store, 393216)
    _save(store, 786432)
    store.close()
    where = tmp_path / checkpoint.CHECKPOINT_DIR
    expected = f"step: no checkpoint at step 400000; saved steps: [393216, 786432] in {where}"
    for load in (checkpoint.restore, checkpoint.load_run, checkpoint.load_policy):
        with pytest.raises(CheckpointError) as caught:
            load(tmp_path, step=400000)
        assert str(caught.value) == expected, load.__name__
    store = CheckpointStore(tmp_path, read_only=True)
    with pytest.raises(CheckpointError, match=r"no checkpoint at step 400000; saved steps: \[393216, 786432\]"):
        store.restore(step=400000)
    store.close()


def test_public_restore_refuses_missing_or_empty_dir(tmp_path):
    with pytest.raises(CheckpointError, match="no such run directory"):
        checkpoint.restore(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        checkpoint.restore(tmp_path / "empty")
    assert not any((tmp_path / "empty").iterdir())  # reading never creates anything


def test_a_restored_state_runs_the_compiled_iteration_without_compiling_again(tmp_path):
    """Restored leaves are placed as a fresh `init`'s are (uncommitted, default device): a resumed
    run reuses the trainer's compiled iteration instead of compiling it a second time."""
    import helpers

    from jaxhum.rl import PPOConfig, make_train

    config = PPOConfig(num_envs=4, unroll_length=2, num_minibatches=2, num_updates_per_batch=1,
                       policy_hidden_sizes=(8,), value_hidden_sizes=(8,), num_eval_envs=2)
    trainer = make_train(helpers.make_slider_env(), config, num_iterations=3)
    state, _ = trainer.iteration(trainer.init(jax.random.key(0)))
    store = CheckpointStore(tmp_path)
    store.save(8, state, {}, {})
    fresh = [x.committed for x in jax.tree.leaves(state)]
    expected = [_bits(x) for x in jax.tree.leaves(trainer.iteration(state)[0])]  # donates `state`
    restored = store.restore(template=jax.eval_shape(trainer.init, jax.random.key(0))).state
    store.close()
    assert [x.committed for x in jax.tree.leaves(restored)] == fresh == [False] * len(fresh)
    compiled = trainer.iteration._cache_size()
    again, _ = trainer.iteration(restored)
    assert trainer.iteration._cache_size() == compiled
    assert [_bits(x) for x in jax.tree.leaves(again)] == expected

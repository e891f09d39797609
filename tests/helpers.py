"""Small helpers shared by test modules (imported as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import pathlib

import jax
import numpy as np

from jaxhum.checkpoint import CheckpointStore


class TraceCounter:
    """Wraps a function and counts how often JAX traces it."""

    def __init__(self, fn):
        self.fn, self.count = fn, 0

    def __call__(self, *args):
        self.count += 1
        return self.fn(*args)


def checkpoint_leaves(run_dir: pathlib.Path, step: int) -> dict[str, tuple]:
    """path -> (shape, dtype, raw bytes) of every leaf of the TrainState saved at `step`: equal
    dicts mean bit-for-bit equal states (PRNG keys compared through their key data)."""
    store = CheckpointStore(run_dir, read_only=True)
    try:
        state = store.restore(step=step).state
    finally:
        store.close()
    out = {}
    for path, leaf in state.items():
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        leaf = np.asarray(leaf)
        out[path] = (leaf.shape, leaf.dtype.str, leaf.tobytes())
    return out

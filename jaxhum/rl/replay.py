"""A replay buffer held on the device as a pytree, and n-step returns computed at insertion.

Buffer: every leaf of ``ReplayBuffer.data`` has a leading axis of ``capacity`` slots. ``insert``
writes a batch of N transitions at slots ``insert_index, insert_index + 1, ...`` modulo the
capacity (circular: once full, the oldest transitions are overwritten first) and ``sample`` draws
slot indices uniformly from the filled part ``[0, size)`` with an explicit key. Capacity and
batch sizes are static (array shapes); insert index and fill count are () int32 leaves, so the
buffer jits, scans and saves (Orbax) like any other part of the train state.

n-step returns are computed AT INSERTION, from a short window of each env's last n steps
(``NStepWindow``, part of the train state): once the window holds n steps, the oldest step's
n-step transition is formed and inserted, so the buffer stores ready-made
(obs, action, R, discount, next_obs) tuples and sampling stays a plain uniform draw. For the
oldest step t of the window (steps t .. t+n-1, cut at the first episode end t+m, m < n):

    R        = sum_{k=0}^{m} gamma^k r_{t+k}
    discount = gamma^(m+1) * (1 - terminated_{t+m})     (0 past a true termination)
    next_obs = final_obs_{t+m}                          (the observation before any autoreset)

where m = n - 1 if no step of the window ends an episode. A time-limit truncation bootstraps
(discount stays gamma^(m+1)); a termination does not. The newest n - 1 steps of each env wait
in the window until later steps complete them; with n = 1 each step is inserted at once.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
from flax import struct


class Transition(NamedTuple):
    """One (possibly n-step) transition as stored in the buffer; one env's shapes shown."""

    obs: jax.Array  # (obs_size,) raw observation the action was taken in
    action: jax.Array  # (A,) env action in [-1, 1]
    reward: jax.Array  # () n-step discounted reward sum R
    discount: jax.Array  # () gamma^(m+1) * (1 - terminated): multiplies the bootstrap value
    next_obs: jax.Array  # (obs_size,) raw observation to bootstrap from


@struct.dataclass
class ReplayBuffer:
    """Fixed-capacity circular buffer; ``data`` leaves have a leading axis of capacity slots."""

    data: Transition  # every leaf (capacity, ...)
    insert_index: jax.Array  # () int32, slot the next insert starts at
    size: jax.Array  # () int32, filled slots, min(inserted so far, capacity)

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


def init(example: Any, capacity: int) -> ReplayBuffer:
    """An empty buffer of ``capacity`` slots for items shaped like ``example`` (one item, no batch axis)."""
    if not isinstance(capacity, int) or capacity <= 0:
        raise ValueError(f"capacity: must be a positive integer, got {capacity!r}")
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return ReplayBuffer(data=data, insert_index=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def insert(buffer: ReplayBuffer, batch: Any, valid: jax.Array | bool = True) -> ReplayBuffer:
    """Writes a batch of N items (leaves (N, ...), N <= capacity) at the next N slots, wrapping around.

    Slot of item i: (insert_index + i) mod capacity. Returns the buffer with insert_index advanced
    by N (mod capacity) and size = min(size + N, capacity). With ``valid`` a () bool that is
    False, the buffer is returned unchanged (its N slots are rewritten with their own contents:
    a select over N rows, where a ``lax.cond`` around the insert could copy the whole buffer).
    """
    capacity = buffer.capacity
    num = jax.tree.leaves(batch)[0].shape[0]
    if num > capacity:
        raise ValueError(f"batch: at most capacity = {capacity} items per insert, got {num}")
    chex.assert_trees_all_equal_shapes_and_dtypes(
        jax.tree.map(lambda x: x[0], batch), jax.tree.map(lambda x: x[0], buffer.data))
    valid = jnp.asarray(valid, bool)
    slots = (buffer.insert_index + jnp.arange(num, dtype=jnp.int32)) % capacity
    data = jax.tree.map(lambda store, x: store.at[slots].set(jnp.where(valid, x, store[slots])), buffer.data, batch)
    advanced = jnp.where(valid, num, 0).astype(jnp.int32)
    return ReplayBuffer(
        data=data,
        insert_index=(buffer.insert_index + advanced) % capacity,
        size=jnp.minimum(buffer.size + advanced, capacity),
    )


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Any:
    """batch_size items drawn uniformly (with replacement) from the filled slots [0, size).

    The draw depends only on ``key`` and ``size``. An empty buffer returns copies of slot 0
    (zeros); callers start sampling once enough is inserted (``learning_starts``).
    """
    slots = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda store: store[slots], buffer.data)


# ----------------------------------------------------------------------------- n-step window


class Step(NamedTuple):
    """One env step as the window keeps it; one env's shapes shown (batched: leading N)."""

    obs: jax.Array  # (obs_size,) raw observation the action was taken in
    action: jax.Array  # (A,)
    reward: jax.Array  # ()
    done: jax.Array  # () 1.0 if the episode ended at this step (termination or time limit)
    terminated: jax.Array  # () 1.0 if it ended by termination (no bootstrap)
    final_obs: jax.Array  # (obs_size,) observation reached, before any autoreset


@struct.dataclass
class NStepWindow:
    """The last n steps of every env, oldest first."""

    steps: Step  # every leaf (n, N, ...)
    count: jax.Array  # () int32, steps pushed so far, saturating at n


def init_window(example: Step, n: int) -> NStepWindow:
    """An empty window of ``n`` steps for batched steps shaped like ``example`` (leaves (N, ...))."""
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n_step: must be a positive integer, got {n!r}")
    steps = jax.tree.map(lambda x: jnp.zeros((n,) + x.shape, x.dtype), example)
    return NStepWindow(steps=steps, count=jnp.zeros((), jnp.int32))


def push(window: NStepWindow, step: Step) -> NStepWindow:
    """Appends the newest batched step (leaves (N, ...)), dropping the oldest."""
    n = jax.tree.leaves(window.steps)[0].shape[0]
    steps = jax.tree.map(lambda w, x: jnp.concatenate([w[1:], x[None]], axis=0), window.steps, step)
    return NStepWindow(steps=steps, count=jnp.minimum(window.count + 1, n))


def is_full(window: NStepWindow) -> jax.Array:
    """() bool: the window holds n steps, so its oldest step's n-step transition is complete."""
    return window.count >= jax.tree.leaves(window.steps)[0].shape[0]


def nstep_return(
    r_t: jax.Array, done_t: jax.Array, terminated_t: jax.Array, gamma: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """n-step reward sum and bootstrap discount of the first of n consecutive steps of ONE env.

    Args:
      r_t, done_t, terminated_t: (n,) rewards, episode-end and termination flags (1.0/0.0) of
        steps t .. t+n-1.
      gamma: discount.
    Returns:
      (R (), discount (), last () int32): see the module docstring; ``last`` = m, the index of
      the step whose final_obs to bootstrap from.
    """
    chex.assert_rank([r_t, done_t, terminated_t], 1)
    chex.assert_equal_shape([r_t, done_t, terminated_t])
    n = r_t.shape[0]
    ended = done_t > 0.0
    last = jnp.where(jnp.any(ended), jnp.argmax(ended), n - 1).astype(jnp.int32)
    k = jnp.arange(n)
    powers = gamma ** k.astype(jnp.float32)
    reward = jnp.sum(jnp.where(k <= last, powers * r_t, 0.0))
    discount = gamma ** (last + 1).astype(jnp.float32) * (1.0 - terminated_t[last])
    return reward, discount, last


def oldest_transition(window: NStepWindow, gamma: float) -> Transition:
    """The n-step transitions (leaves (N, ...)) of every env's oldest window step.

    Meaningful only when ``is_full(window)``.
    """
    steps = window.steps
    reward, discount, last = jax.vmap(nstep_return, in_axes=(1, 1, 1, None))(
        steps.reward, steps.done, steps.terminated, gamma)
    # final_obs (n, N, obs) at each env's own last step.
    next_obs = jnp.take_along_axis(steps.final_obs, last[None, :, None], axis=0)[0]
    return Transition(obs=steps.obs[0], action=steps.action[0], reward=reward, discount=discount,
                      next_obs=next_obs)

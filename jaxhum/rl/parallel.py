"""Many seeds in one program and data parallelism over devices, as wrappers of the PPO functions.

``make_train`` builds the un-jitted PPO functions for ONE seed on ONE device; ``compile_trainer``
turns them into the jitted ``Trainer``:

  seeds     num_seeds K > 1: ``jax.vmap`` over the TrainState (init takes K keys, iteration maps
            K states to K states, evaluate takes K states and K keys). Every leaf gets a leading
            axis K; the seeds share nothing but the program. K = 1 is the plain function.
            ``vmap_seeds=False`` puts K copies of the one-seed program side by side instead
            (bit-identical to separate runs on the CPU; compile time grows with K).
  devices   a ``Mesh`` with one axis 'data': the env batch (every leaf of ``env_state`` and the
            per-env episode counters, env axis num_envs) is split over the devices; parameters,
            optimiser state, normaliser and keys are replicated. The trainer also constrains each
            SGD minibatch to be split along its sample axis, so every device computes the gradient
            of its share and XLA inserts the all-reduce (the mean over the minibatch becomes a
            cross-device sum). With no mesh, nothing is placed: the single-device program.

Multi-host: after ``jax.distributed.initialize`` (see ``initialize_distributed``) ``jax.devices()``
lists every process's devices, the mesh spans them, and each process steps the envs of its own
devices; every process runs the same program and sees the same replicated parameters and metrics.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices: Any = "all") -> Mesh | None:
    """A 1-D mesh named 'data' over the devices, or None for a single device.

    Args:
      devices: 'all' (every device of every process: ``jax.devices()``) or a positive count
        (the first that many local devices; single-process only).
    """
    if devices == "all":
        chosen = jax.devices()
    else:
        local = jax.local_devices()
        if not isinstance(devices, int) or isinstance(devices, bool) or not 0 < devices <= len(local):
            raise ValueError(f"devices: must be 'all' or a count in 1..{len(local)} (local devices), got {devices!r}")
        chosen = local[:devices]
    if len(chosen) == 1:
        return None
    return Mesh(np.array(chosen), (DATA_AXIS,))


def device_count(devices: Any = "all") -> int:
    """How many devices ``make_mesh(devices)`` spans (validates like it)."""
    mesh = make_mesh(devices)
    return 1 if mesh is None else mesh.devices.size


def minibatch_sharding(mesh: Mesh | None) -> NamedSharding | None:
    """Sharding of the stacked minibatches (num_minibatches, minibatch_size, ...): split on samples."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(None, DATA_AXIS))


def state_shardings(state_shape: Any, mesh: Mesh, num_seeds: int) -> Any:
    """Per-leaf shardings of a TrainState: env-axis leaves split over 'data', the rest replicated.

    Args:
      state_shape: a TrainState of arrays or ShapeDtypeStructs (from ``jax.eval_shape``), with a
        leading seed axis when num_seeds > 1.
    """
    env_axis = PartitionSpec(None, DATA_AXIS) if num_seeds > 1 else PartitionSpec(DATA_AXIS)
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, env_axis)
    shardings = jax.tree.map(lambda _: replicated, state_shape)
    return shardings.replace(
        env_state=jax.tree.map(lambda _: split, state_shape.env_state),
        episode_return=split,
        episode_length=split,
    )


def _unrolled(fn: Callable) -> Callable:
    """fn over a leading seed axis as one copy of fn per seed, side by side in the program.

    Each copy computes with exactly the shapes of a one-seed run. ``jax.lax.map`` would compile
    fn once, but XLA compiles a loop body differently from the same ops at the top level, and
    the results then differ in the last bits too.
    """

    def mapped(*args: Any) -> Any:
        num = jax.tree.leaves(args)[0].shape[0]
        outs = [fn(*jax.tree.map(lambda x, i=i: x[i], args)) for i in range(num)]
        return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *outs)

    return mapped


def compile_trainer(
    init: Callable,
    iteration: Callable,
    evaluate: Callable,
    num_seeds: int = 1,
    mesh: Mesh | None = None,
    vmap_seeds: bool = True,
) -> tuple[Callable, Callable, Callable]:
    """Jits one seed's (init, iteration, evaluate) for ``num_seeds`` seeds over ``mesh``.

    Args:
      init: key -> TrainState.
      iteration: TrainState -> (TrainState, metrics).
      evaluate: (TrainState, key) -> metrics.
      num_seeds: K; for K > 1 every argument and result gains a leading axis K (keys too).
      mesh: a 'data' mesh (``make_mesh``), or None for one device.
      vmap_seeds: True batches the seeds (``jax.vmap``: one batched program, the fast way).
        False puts one copy of the one-seed program per seed into the program (compile time
        grows with K), so each seed computes with exactly the shapes of a one-seed run: on the
        CPU that makes each seed bit-identical to its separate run, which vmap does not (XLA's
        CPU reductions sum in an order that depends on how many rows they reduce at once; a
        last-bit difference then grows through the chaotic physics).
    Returns:
      (init, iteration, evaluate), jitted; iteration donates its state argument.
    """
    if not isinstance(num_seeds, int) or isinstance(num_seeds, bool) or num_seeds <= 0:
        raise ValueError(f"num_seeds: must be a positive integer, got {num_seeds!r}")
    if num_seeds > 1:
        batch = jax.vmap if vmap_seeds else _unrolled
        init, iteration, evaluate = batch(init), batch(iteration), batch(evaluate)
    if mesh is None:
        return jax.jit(init), jax.jit(iteration, donate_argnums=0), jax.jit(evaluate)
    key_shape = jax.ShapeDtypeStruct((num_seeds,) if num_seeds > 1 else (), jax.random.key(0).dtype)
    state = state_shardings(jax.eval_shape(init, key_shape), mesh, num_seeds)
    replicated = NamedSharding(mesh, PartitionSpec())
    return (
        jax.jit(init, out_shardings=state),
        jax.jit(iteration, in_shardings=(state,), out_shardings=(state, replicated), donate_argnums=0),
        jax.jit(evaluate, out_shardings=replicated),
    )


class Precompile:
    """Compiles a jitted function for given argument shapes in a background thread, so that its
    compile overlaps the caller's own compiles and device work instead of stalling it later.

    ``Precompile(fn, *args)`` runs ``fn.lower(*args).compile()`` at once in a daemon thread; args
    may be ``jax.ShapeDtypeStruct`` (e.g. from ``jax.eval_shape``) or arrays, and nothing runs on
    a device. The compile fills ``fn``'s own cache, so the caller's later calls of ``fn`` with
    arguments of those shapes, dtypes and shardings run without compiling (an uncommitted array
    matches a struct without sharding). ``wait()`` returns once the compile is over, with the
    exception it raised or None; call it before the first call of ``fn``, or that call compiles
    the same program a second time beside this one.
    """

    def __init__(self, fn: Callable, *args: Any) -> None:
        self.error: Exception | None = None
        self._done = threading.Event()
        threading.Thread(target=self._compile, args=(fn, args), daemon=True, name="jaxhum-precompile").start()

    def _compile(self, fn: Callable, args: tuple[Any, ...]) -> None:
        try:
            fn.lower(*args).compile()
        except Exception as err:
            self.error = err
        finally:
            self._done.set()

    def wait(self) -> Exception | None:
        """Blocks until the compile is over; the exception it raised, or None."""
        self._done.wait()
        return self.error


def initialize_distributed() -> bool:
    """Starts multi-host JAX from environment variables; True if it did.

    Set on every process before it imports anything that uses JAX devices:
      JAXHUM_COORDINATOR   host:port of process 0 (e.g. 10.0.0.1:12345)
      JAXHUM_NUM_PROCESSES number of processes
      JAXHUM_PROCESS_ID    this process's index, 0 .. num_processes - 1
    Without JAXHUM_COORDINATOR nothing happens (one process). On clusters that JAX detects by
    itself (SLURM, Cloud TPU) JAXHUM_COORDINATOR=auto calls ``jax.distributed.initialize()`` bare.
    """
    coordinator = os.environ.get("JAXHUM_COORDINATOR")
    if not coordinator:
        return False
    if coordinator == "auto":
        jax.distributed.initialize()
        return True
    try:
        num_processes = int(os.environ["JAXHUM_NUM_PROCESSES"])
        process_id = int(os.environ["JAXHUM_PROCESS_ID"])
    except (KeyError, ValueError) as err:
        raise ValueError(
            "JAXHUM_NUM_PROCESSES, JAXHUM_PROCESS_ID: must be set to integers with JAXHUM_COORDINATOR "
            f"({type(err).__name__}: {err})") from None
    # CPU collectives across processes need an implementation (gloo ships with jaxlib); the
    # option only concerns the CPU backend, and must be set before any backend starts.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    return True

"""What one iteration's SGD costs under each setting of the network and minibatch knobs.

The SGD phase of the humanoid_run gpu preset's batch (num_updates_per_batch epochs of
num_minibatches gradient steps over one iteration's 327,680 samples) is jitted and timed alone
(compile excluded, best of --repeats), for each variant. All but 'preset' start from brax's SGD
(8 epochs of 32 minibatches of 10240, float32: the gpu preset before commit a783e28):

  preset        the gpu preset as it is (bf16, 2 epochs of 8 minibatches of 40960, since 12e35c2)
  brax          brax's SGD
  bf16          compute_dtype='bfloat16' (mixed precision: hidden layers in bfloat16)
  unroll4       the minibatch scan unrolled 4 times (same arithmetic, fewer loop trips)
  mb16          16 minibatches of twice the size (half the gradient steps)
  value3        value net (256, 256, 256) instead of five layers
  epochs4       4 epochs instead of 8 (half the gradient steps)
  bf16_mb8      bf16, 8 minibatches of 40960 (a quarter of the gradient steps)
  bf16_e4_mb16  bf16, 4 epochs of 16 minibatches of 20480 (64 steps, a quarter)
  bf16_e4_mb8   bf16, 4 epochs of 8 minibatches of 40960 (32 steps, an eighth: the preset's SGD
                before 12e35c2)
  preset_e1_mb16  1 epoch of 16 minibatches of 20480 (16 steps, each sample once)

Physics is untouched by every variant, so with the iteration's other parts (profile_iteration.py)
this gives the training steps/s each variant could reach. Only 'bf16' and 'unroll4' leave brax's
algorithm as it is; the others change how much SGD each sample gets, so their effect on
time-to-8000 must be measured with train_vs_brax.py (its --set takes the same fields).

    python benchmarks/sgd_cost.py                       # on the GPU, every variant
    python benchmarks/sgd_cost.py --smoke               # tiny, on the CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxhum
from jaxhum.rl import networks
from jaxhum.rl import train as train_lib

BRAX_SGD = {"compute_dtype": "float32", "num_updates_per_batch": 8, "num_minibatches": 32}
VARIANTS = {
    "preset": {},
    "brax": BRAX_SGD,
    "bf16": {**BRAX_SGD, "compute_dtype": "bfloat16"},
    "unroll4": BRAX_SGD,
    "mb16": {**BRAX_SGD, "num_minibatches": 16},
    "value3": {**BRAX_SGD, "value_hidden_sizes": (256, 256, 256)},
    "epochs4": {**BRAX_SGD, "num_updates_per_batch": 4},
    "bf16_mb8": {**BRAX_SGD, "compute_dtype": "bfloat16", "num_minibatches": 8},
    "bf16_e4_mb16": {"compute_dtype": "bfloat16", "num_updates_per_batch": 4, "num_minibatches": 16},
    "bf16_e4_mb8": {"compute_dtype": "bfloat16", "num_updates_per_batch": 4, "num_minibatches": 8},
    "preset_e1_mb16": {"compute_dtype": "bfloat16", "num_updates_per_batch": 1, "num_minibatches": 16},
}


def _epoch_unrolled(static, batch, carry, key, unroll: int):
    """train._epoch_step with the minibatch scan unrolled ``unroll`` times."""
    config = static.config
    key_perm, key_entropy = jax.random.split(key)
    perm = jax.random.permutation(key_perm, config.batch_size)
    minibatches = jax.tree.map(
        lambda x: jnp.reshape(x[perm], (config.num_minibatches, config.minibatch_size) + x.shape[1:]), batch)
    keys = jax.random.split(key_entropy, config.num_minibatches)
    step = functools.partial(train_lib._minibatch_step, static)
    return jax.lax.scan(step, carry, (minibatches, keys), unroll=unroll)


def sgd_seconds(env, ppo: train_lib.PPOConfig, unroll: int, repeats: int) -> float:
    """Best wall seconds of one iteration's SGD phase (all epochs) for this config."""
    optimizer, _ = train_lib._make_optimizer(ppo, 10)
    static = train_lib._Static(
        env=env, config=ppo,
        policy_net=networks.make_policy_network(env.observation_size, env.action_size,
                                                ppo.policy_hidden_sizes, ppo.activation, ppo.compute_dtype),
        value_net=networks.make_value_network(env.observation_size, ppo.value_hidden_sizes, ppo.activation,
                                              ppo.compute_dtype),
        optimizer=optimizer)
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    b, a = ppo.batch_size, env.action_size
    batch = train_lib.Batch(
        obs=jax.random.normal(keys[0], (b, env.observation_size)),
        raw_action=jax.random.normal(keys[1], (b, a)),
        old_log_prob=jax.random.normal(keys[2], (b,)) - 10.0,
        advantage=jax.random.normal(keys[3], (b,)),
        value_target=jax.random.normal(keys[4], (b,)))
    params = {"policy": static.policy_net.init(keys[5]), "value": static.value_net.init(keys[6])}
    carry = train_lib._SGDCarry(params=params, opt_state=optimizer.init(params))
    if unroll == 1:
        epoch = functools.partial(train_lib._epoch_step, static, batch)
    else:
        epoch = lambda c, k: _epoch_unrolled(static, batch, c, k, unroll)  # noqa: E731

    @jax.jit
    def sgd(carry, key):
        return jax.lax.scan(epoch, carry, jax.random.split(key, ppo.num_updates_per_batch))

    jax.block_until_ready(sgd(carry, keys[7]))
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(sgd(carry, jax.random.fold_in(keys[7], i)))
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny batch on the CPU")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from experiments import humanoid_run

    config = humanoid_run.get_config("gpu")
    ppo = config.ppo
    if args.smoke:
        ppo = dataclasses.replace(ppo, num_envs=64, unroll_length=4, num_minibatches=4)
    env = jaxhum.envs.make(config.env_name, **dict(config.env))
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}, batch {ppo.batch_size}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"{'variant':>8} | {'SGD ms':>8} | {'grad steps':>10} | {'ms per step':>11}")
    for name in args.variants:
        variant = dataclasses.replace(ppo, **VARIANTS[name])
        if args.smoke:  # minibatches that divide the tiny batch
            variant = dataclasses.replace(variant, num_minibatches=min(variant.num_minibatches, 4))
        seconds = sgd_seconds(env, variant, 4 if name == "unroll4" else 1, 1 if args.smoke else args.repeats)
        steps = variant.gradient_steps_per_iteration
        print(f"{name:>8} | {1e3 * seconds:8.1f} | {steps:10d} | {1e3 * seconds / steps:11.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

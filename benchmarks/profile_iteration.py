"""Where one PPO iteration spends its time: physics, policy inference, values + GAE, SGD.

Each part is jitted and timed on its own (compile excluded, best of a few repeats), with the
gpu preset's PPO at the given env count:
  physics     unroll_length batched env steps with random actions (no network);
  rollout     the training rollout (physics + policy inference + bookkeeping); 'inference' is
              rollout - physics, so it includes physics being slower under the policy's actions;
  values      the value network on obs and final_obs (the preset's compute dtype);
  GAE         the GAE scan over those values;
  iteration   the whole jitted iteration; SGD is what remains (with the normaliser update).

    python benchmarks/profile_iteration.py --num-envs 8192
    python benchmarks/profile_iteration.py --experiment joystick --num-envs 8192   # jh1
    python benchmarks/profile_iteration.py --num-envs 8192 --set ppo.num_updates_per_batch=2
    python benchmarks/profile_iteration.py --smoke
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxhum
from jaxhum.rl import losses, networks
from jaxhum.rl import train as train_lib


def _best(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def profile(ppo: train_lib.PPOConfig, env, repeats: int) -> dict[str, float]:
    """Seconds per iteration of each part (see the module docstring)."""
    trainer = train_lib.make_train(env, ppo, num_iterations=10)
    state = trainer.init(jax.random.PRNGKey(0))
    n, t_len = ppo.num_envs, ppo.unroll_length
    policy_net = networks.make_policy_network(env.observation_size, env.action_size, ppo.policy_hidden_sizes,
                                              ppo.activation, ppo.compute_dtype)
    value_net = networks.make_value_network(train_lib._value_input_size(env), ppo.value_hidden_sizes,
                                            ppo.activation, ppo.compute_dtype)
    static = train_lib._Static(env=env, config=ppo, policy_net=policy_net, value_net=value_net, optimizer=None)

    @jax.jit
    def physics(env_state, key):
        def body(s, k):
            a = jax.random.uniform(k, (n, env.action_size), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            return s, s.reward

        return jax.lax.scan(body, env_state, jax.random.split(key, t_len))[1]

    @jax.jit
    def rollout(st, key):
        behaviour = train_lib.PolicyParams(normalizer=st.normalizer, policy=st.policy_params)
        zero = jnp.zeros((), jnp.float32)
        carry = train_lib._RolloutCarry(st.env_state, st.episode_return, st.episode_length, zero, zero, zero, zero)
        step = functools.partial(train_lib._rollout_step, static, behaviour)
        return jax.lax.scan(step, carry, jax.random.split(key, t_len))[1]

    traj = rollout(state, jax.random.PRNGKey(1))

    @jax.jit
    def values(st, traj):
        obs = train_lib._normalize(static, st.normalizer, traj.obs)
        return value_net.apply(st.value_params, jnp.stack(train_lib._value_inputs(static, st, traj, obs)))

    @jax.jit
    def gae(traj, v):
        fn = functools.partial(losses.gae, gamma=ppo.discounting, lam=ppo.gae_lambda)
        term = traj.done * (1.0 - traj.truncated)
        return jax.vmap(fn, in_axes=1, out_axes=1)(traj.reward, v[0], v[1], term, traj.done)

    times = {
        "physics": _best(physics, state.env_state, jax.random.PRNGKey(2), repeats=repeats),
        "rollout": _best(rollout, state, jax.random.PRNGKey(1), repeats=repeats),
        "values": _best(values, state, traj, repeats=repeats),
        "GAE": _best(gae, traj, values(state, traj), repeats=repeats),
    }
    # iteration donates its state, so each call takes the previous call's output.
    holder = {"state": state}

    def one_iteration():
        holder["state"], metrics = trainer.iteration(holder["state"])
        return metrics

    jax.block_until_ready(one_iteration())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(one_iteration())
        best = min(best, time.perf_counter() - t0)
    times["iteration"] = best
    times["inference"] = times["rollout"] - times["physics"]
    times["SGD"] = times["iteration"] - times["rollout"] - times["values"] - times["GAE"]
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="humanoid_run", help="experiments.<NAME>, its gpu preset")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--num-envs", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="config overrides of the preset (e.g. ppo.num_updates_per_batch=2)")
    args = parser.parse_args(argv)
    import importlib

    from jaxhum.config import apply_overrides

    experiment = importlib.import_module(f"experiments.{args.experiment}")
    config = apply_overrides(experiment.get_config("cpu" if args.smoke else "gpu"), list(args.overrides))
    env = jaxhum.envs.make(config.env_name, **dict(config.env))
    print(f"{args.experiment}, device: {jax.devices()[0].device_kind}, jax {jax.__version__}, "
          f"overrides {args.overrides}")
    parts = ("physics", "inference", "values", "GAE", "SGD")
    print(f"{'envs':>6} | {'iteration ms':>12} | " + " | ".join(f"{p + ' ms':>12}" for p in parts))
    for n in args.num_envs or ([16] if args.smoke else [config.ppo.num_envs]):
        import dataclasses

        ppo = dataclasses.replace(config.ppo, num_envs=n)
        t = profile(ppo, env, 1 if args.smoke else args.repeats)
        cells = [f"{1e3 * t[p]:5.1f} ({100.0 * t[p] / t['iteration']:4.1f}%)" for p in parts]
        print(f"{n:6d} | {1e3 * t['iteration']:12.1f} | " + " | ".join(f"{c:>12}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

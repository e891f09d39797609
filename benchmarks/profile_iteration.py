"""Where one PPO iteration spends its time: physics, policy inference, values + GAE, SGD.

Each part is jitted and timed on its own (compile excluded, best of a few repeats), with the
gpu preset's PPO at the given env count:
  physics     unroll_length batched env steps with random actions (no network);
  rollout     the training rollout (physics + policy inference + bookkeeping);
  values+GAE  the value network on obs and final_obs and the GAE scan;
  iteration   the whole jitted iteration; SGD is what remains.

    python benchmarks/profile_iteration.py --num-envs 8192
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

import jaxhum  # noqa: E402
from jaxhum.rl import losses, networks  # noqa: E402
from jaxhum.rl import train as train_lib  # noqa: E402


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
    policy_net = networks.make_policy_network(env.observation_size, env.action_size, ppo.policy_hidden_sizes, ppo.activation)
    value_net = networks.make_value_network(env.observation_size, ppo.value_hidden_sizes, ppo.activation)
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
    def values_and_gae(st, traj):
        obs = train_lib._normalize(static, st.normalizer, traj.obs)
        final_obs = train_lib._normalize(static, st.normalizer, traj.final_obs)
        v = value_net.apply(st.value_params, jnp.stack([obs, final_obs]))
        gae = functools.partial(losses.gae, gamma=ppo.discounting, lam=ppo.gae_lambda)
        term = traj.done * (1.0 - traj.truncated)
        return jax.vmap(gae, in_axes=1, out_axes=1)(traj.reward, v[0], v[1], term, traj.done)

    times = {
        "physics": _best(physics, state.env_state, jax.random.PRNGKey(2), repeats=repeats),
        "rollout": _best(rollout, state, jax.random.PRNGKey(1), repeats=repeats),
        "values+GAE": _best(values_and_gae, state, traj, repeats=repeats),
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
    times["SGD"] = times["iteration"] - times["rollout"] - times["values+GAE"]
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--num-envs", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from experiments import humanoid_run

    config = humanoid_run.get_config("cpu" if args.smoke else "gpu")
    env = jaxhum.envs.make(config.env_name, **dict(config.env))
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(f"{'envs':>6} | {'iteration ms':>12} | {'physics':>8} | {'inference':>9} | {'values+GAE':>10} | {'SGD':>8}")
    for n in args.num_envs or ([16] if args.smoke else [config.ppo.num_envs]):
        import dataclasses

        ppo = dataclasses.replace(config.ppo, num_envs=n)
        t = profile(ppo, env, 1 if args.smoke else args.repeats)
        frac = {k: 100.0 * t[k] / t["iteration"] for k in ("physics", "inference", "values+GAE", "SGD")}
        print(f"{n:6d} | {1e3 * t['iteration']:12.1f} | {frac['physics']:7.1f}% | {frac['inference']:8.1f}% | "
              f"{frac['values+GAE']:9.1f}% | {frac['SGD']:7.1f}%", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

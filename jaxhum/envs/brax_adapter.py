"""`to_brax(env)`: a jaxhum task as a `brax.envs.Env`, for brax's wrappers and trainers.

brax's training wrappers (`EpisodeWrapper`, `AutoResetWrapper`) do their own truncation and
autoreset, so the adapter steps with `env.step_without_reset`; its `done` is termination alone.
The jaxhum `EnvState` travels as brax's `pipeline_state`.
"""

from __future__ import annotations

from typing import Any

import jax

from jaxhum.envs.base import Env


def to_brax(env: Env) -> Any:
    """Returns a `brax.envs.Env` that runs `env` (brax is imported here, not at package import)."""
    from brax.envs.base import Env as BraxEnv
    from brax.envs.base import State as BraxState

    class JaxhumBraxEnv(BraxEnv):
        """brax view of a jaxhum task."""

        def __init__(self, task: Env):
            self._task = task

        def reset(self, rng: jax.Array) -> BraxState:
            s = self._task.reset(rng)
            return BraxState(pipeline_state=s, obs=s.obs, reward=s.reward, done=s.done, metrics=dict(s.metrics))

        def step(self, state: BraxState, action: jax.Array) -> BraxState:
            s = self._task.step_without_reset(state.pipeline_state, action)
            # Keep metric keys that brax's wrappers added (EvalWrapper adds 'reward'): scans over
            # the state need the same keys in and out.
            metrics = {**state.metrics, **s.metrics}
            return state.replace(pipeline_state=s, obs=s.obs, reward=s.reward, done=s.done, metrics=metrics)

        @property
        def observation_size(self) -> int:
            return self._task.observation_size

        @property
        def action_size(self) -> int:
            return self._task.action_size

        @property
        def backend(self) -> str:
            return "mjx"

        @property
        def dt(self) -> float:
            return self._task.dt

        @property
        def jaxhum_env(self) -> Env:
            return self._task

    return JaxhumBraxEnv(env)

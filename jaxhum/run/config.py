"""What a run is, without the training loop: its config and how to rebuild its env, trainer and policy.

`RunConfig` fully determines a run; `validate` checks it (one `ConfigError` line naming the
field) before anything is compiled or written and completes its `env` with the task's defaults;
`build_env`, `build_trainer`, `state_template` and `make_policy` rebuild from it everything that
loading a saved run needs; `json_schema` describes every field a run may set.
Dependencies point one way: `jaxhum.run.checkpoint` (loading) and `jaxhum.run.loop` (the training
loop) import this module; it imports neither, so the tools can load a run without the loop.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

from jaxhum import config as config_lib
from jaxhum.config import ConfigError, FrozenMapping
from jaxhum.rl.off_policy import OffPolicyConfig
from jaxhum.rl.train import PPOConfig
from jaxhum.run import compile_cache as cache_lib

__all__ = [
    "ALGORITHMS",
    "RESUMABLE_FIELDS",
    "RunConfig",
    "SEED_MAX",
    "build_env",
    "build_eval_env",
    "build_trainer",
    "every_iterations",
    "json_schema",
    "make_policy",
    "num_iterations",
    "policy_architecture",
    "state_template",
    "SEEDS_FILE",
    "seed_config",
    "seed_run_dirs",
    "seeds_of",
    "steps_per_iteration",
    "train_keys",
    "trainer_config",
    "validate",
]

# The training algorithms a run may choose (`RunConfig.algorithm`): PPO, and the off-policy pair.
ALGORITHMS = ("ppo", "sac", "td3")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run. Build it with an experiment's `get_config()`, never by hand-editing.

    Attributes:
      env_name: task name in the `jaxhum.envs` registry.
      env: the task's config, `jaxhum.envs.make(env_name, **env)`: an experiment gives the fields
        it changes (set single keys with `env.episode_length=500` or
        `env.reward_weights.ctrl_l2=0`); `validate` completes it with the task's defaults, so a
        validated config (`--print-config`, `config.json`) holds every field of the task.
      algorithm: the training algorithm: 'ppo' (on-policy, `ppo`'s hyperparameters), 'sac' or
        'td3' (off-policy with an on-device replay buffer, `off_policy`'s hyperparameters;
        `validate` sets `off_policy.algorithm` to it). The unused one of `ppo` and `off_policy`
        is ignored.
      ppo: PPO hyperparameters (`jaxhum.rl.train.PPOConfig`; see its docstring).
      off_policy: SAC / TD3 hyperparameters (`jaxhum.rl.off_policy.OffPolicyConfig`); one
        iteration is one env step of every env plus `updates_per_iteration` gradient steps.
      seed: seeds the training key (init, rollouts, SGD) and, split from it, the eval key; in
        [0, SEED_MAX] (with num_seeds > 1, the last seed too).
      num_timesteps: env steps to train for; rounded up to whole iterations.
      log_every: env steps between log points (metrics.jsonl, TensorBoard, progress).
      eval_every: env steps between evaluations; 0 disables evaluation (also the final one).
      checkpoint_every: env steps between checkpoints (one is also saved at the end and on
        SIGINT/SIGTERM).
      keep_checkpoints: how many of the newest checkpoints to keep (the best one is kept
        separately in best_checkpoint/).
      out_dir: run directory; empty means runs/<env_name>/<UTC timestamp>-s<seed>.
      stop_at_eval_return: end the run (with a final checkpoint) at the first evaluation
        whose mean episode return reaches this value; None (null in JSON; `inf` on the command
        line means the same) never stops early. With num_seeds > 1 the run ends once every seed
        has reached it.
      init_from: a run directory to fine-tune from: the new run starts from that run's policy,
        value and normalizer (its newest complete checkpoint), everything else (optimizer,
        env states, keys) fresh from this config and seed; shapes must match
        (`jaxhum.run.finetune`). Empty starts from scratch. A resumed run ignores it.
      num_seeds: K > 1 trains seeds seed, seed + 1, ..., seed + K - 1 as K independent runs in
        one jitted program (vmap over the train state); each gets its own run directory
        out_dir/seed_<S> (see `seed_run_dirs`), a complete run with num_seeds 1 in its config.
      vmap_seeds: with num_seeds > 1, True batches the seeds (jax.vmap: the fast way); False
        puts K copies of the one-seed program into the one program (compile time grows with K),
        which on the CPU gives each seed exactly the numbers of its separate run (vmap differs
        in the last bits there).
      devices: how many devices to split the env batch and the SGD minibatches over: 0 = all
        devices (of every process, after `jax.distributed.initialize`), N = the first N local
        devices. ppo.num_envs and the minibatch size must divide by the count. An off-policy
        run (sac, td3) trains on one device: devices must then be 1 (or 0 on a one-device machine).
      eval_env: changes to `env` for evaluation alone: the world the policy is judged in (the
        run's evaluations, and `jaxhum.evaluate`, falls, robustness, sim2sim and export of the
        run), as fields of the task merged over `env` (`eval_env.randomization.push_velocity=0.1,1.0`
        evaluates under kicks of at most 1 m/s a policy trained under larger ones). Empty (the
        default) evaluates in the training world. The observation and action sizes must stay
        those of `env`. `validate` stores each given field's whole value.
      compile_cache: where compiled programs are kept between processes (`jaxhum.run.compile_cache`),
        so that a second run of the same config, and the tools run on this one, load them instead
        of compiling: '' (the default) is the folder JAX already uses (`JAX_COMPILATION_CACHE_DIR`)
        else $XDG_CACHE_HOME/jaxhum/xla (~/.cache/jaxhum/xla); 'off' compiles everything in each
        process; any other value is a directory. It never changes the run's results; an
        unwritable folder is one warning line and no cache.
    """

    env_name: str = "humanoid_run"
    env: Mapping[str, Any] = FrozenMapping()
    algorithm: str = "ppo"
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    off_policy: OffPolicyConfig = dataclasses.field(default_factory=OffPolicyConfig)
    seed: int = 0
    num_timesteps: int = 50_000_000
    log_every: int = 500_000
    eval_every: int = 2_500_000
    checkpoint_every: int = 5_000_000
    keep_checkpoints: int = 3
    out_dir: str = ""
    stop_at_eval_return: float | None = None
    init_from: str = ""
    num_seeds: int = 1
    vmap_seeds: bool = True
    devices: int = 0
    eval_env: Mapping[str, Any] = FrozenMapping()
    compile_cache: str = ""


# The largest seed: jax.random.key takes the seed modulo 2**32 (key(2**32) is key(0)), so a
# larger one would silently train the run of a smaller one.
SEED_MAX = 2**32 - 1

# Fields a resumed run may change: none of them alters the state's shapes or the training math
# up to the point reached (a longer num_timesteps does lengthen a 'linear' lr schedule; the
# compile cache changes where compiled programs come from, never what they compute).
RESUMABLE_FIELDS = (
    "num_timesteps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "out_dir",
    "stop_at_eval_return", "eval_env", "compile_cache",
)


# ----------------------------------------------------------------------------- validation


def validate(config: RunConfig, build: bool = True) -> RunConfig:
    """Checks a run config; returns it with `env` the task's full config (defaults included).

    Every float must be finite; `stop_at_eval_return=inf` is taken as None (never stop). With
    `build`, the task is also built (`build_env`, memoized: its model is loaded, nothing is
    compiled), so a missing or malformed model file is reported here rather than as a traceback
    once the run started. A config `validate` returned validates to itself.

    Raises:
      ConfigError: one line naming the first invalid field and the constraint it breaks
        (`env.model_path` or `env` for a task that fails to build).
    """
    config = _never_stop(config)
    config_lib.validate_types(config)
    require = config_lib.require
    for name in ("num_timesteps", "log_every", "checkpoint_every", "keep_checkpoints"):
        value = getattr(config, name)
        require(value > 0, name, f"must be a positive integer, got {value}")
    require(config.eval_every >= 0, "eval_every", f"must be >= 0 (0 disables evaluation), got {config.eval_every}")
    require(0 <= config.seed <= SEED_MAX, "seed", f"must be in [0, {SEED_MAX}], got {config.seed}")
    require(config.num_seeds > 0, "num_seeds", f"must be a positive integer, got {config.num_seeds}")
    require(config.seed + config.num_seeds - 1 <= SEED_MAX, "num_seeds",
            f"must be at most {SEED_MAX - config.seed + 1} with seed {config.seed} (the last seed, "
            f"seed + num_seeds - 1, must be <= {SEED_MAX}), got {config.num_seeds}")
    require(not (config.init_from and config.num_seeds > 1), "init_from",
            f"fine-tuning trains one seed: must be empty with num_seeds > 1, got num_seeds {config.num_seeds}")
    cache_lib.check(config.compile_cache)
    config = _validate_algorithm(config)
    _validate_devices(config)
    config = _validate_env(config)
    config = _validate_eval_env(config)
    if build:
        _check_builds(config)
    return config


def _never_stop(config: RunConfig) -> RunConfig:
    """`stop_at_eval_return=inf` (the command line's "never", and old run directories') as None."""
    stop = config.stop_at_eval_return
    if not (isinstance(stop, float) and not math.isfinite(stop)):
        return config
    config_lib.require(stop == math.inf, "stop_at_eval_return",
                       f"must be a finite number or inf, got {stop} (inf or none: never stop)")
    return dataclasses.replace(config, stop_at_eval_return=None)


def _validate_algorithm(config: RunConfig) -> RunConfig:
    """algorithm names one of ALGORITHMS and its hyperparameters are valid; returns the config with
    `off_policy.algorithm` set to an off-policy `algorithm`."""
    config_lib.require(config.algorithm in ALGORITHMS, "algorithm",
                       f"must be one of {', '.join(ALGORITHMS)}, got {config.algorithm!r}")
    if config.algorithm != "ppo":
        config = dataclasses.replace(
            config, off_policy=dataclasses.replace(config.off_policy, algorithm=config.algorithm))
    prefix = _trainer_field(config)
    try:
        trainer_config(config).validate()
    except ValueError as err:
        raise _from_value_error(prefix, err) from None
    return config


def _trainer_field(config: RunConfig) -> str:
    """The RunConfig field holding the chosen algorithm's hyperparameters: 'ppo' or 'off_policy'."""
    return "ppo" if config.algorithm == "ppo" else "off_policy"


def trainer_config(config: RunConfig) -> Any:
    """The chosen algorithm's hyperparameters: `config.ppo` or `config.off_policy`."""
    return config.ppo if config.algorithm == "ppo" else config.off_policy


def _validate_devices(config: RunConfig) -> None:
    """devices names a device count that exists and divides the env batch and the minibatches."""
    import jax

    available = jax.device_count() if config.devices == 0 else jax.local_device_count()
    config_lib.require(0 <= config.devices <= available, "devices",
                       f"must be 0 (all devices) or a count in 1..{available} (local devices), got {config.devices}")
    count = config.devices or available
    if config.algorithm != "ppo":
        config_lib.require(count == 1, "devices", f"{config.algorithm} trains on one device: must be 1, got "
                           f"{config.devices}" + (f" (all {available} devices)" if config.devices == 0 else ""))
        return
    try:
        config.ppo.check_devices(count)
    except ValueError as err:
        raise _from_value_error("ppo", err) from None


def _validate_env(config: RunConfig) -> RunConfig:
    """env_name names a task and env holds fields of its config; returns the config with `env`
    the task's whole config (`jaxhum.envs.registry.resolve` parses text and JSON values, merges
    them over the task's defaults and checks them) as a mapping of JSON values."""
    from jaxhum import envs

    require = config_lib.require
    require(config.env_name in envs.REGISTRY, "env_name",
            f"must be one of {', '.join(sorted(envs.REGISTRY))}, got {config.env_name!r}")
    fields = config_lib.field_types(envs.REGISTRY[config.env_name].config_cls)
    for key in config.env:
        require(key in fields, f"env.{key}",
                f"unknown field of {config.env_name}; known fields: {', '.join(sorted(fields))}")
    try:
        task = envs.registry.resolve(config.env_name, config.env, parse=True)
    except ValueError as err:
        raise _from_value_error("env", err) from None
    return dataclasses.replace(config, env=config_lib.as_mapping(task))


def _validate_eval_env(config: RunConfig) -> RunConfig:
    """eval_env holds fields of the task that merge over env into a valid task; returns the config
    with each given field's whole value (parsed and completed: `config_lib.as_mapping`)."""
    from jaxhum import envs

    if not config.eval_env:
        return config
    fields = config_lib.field_types(envs.REGISTRY[config.env_name].config_cls)
    for key in config.eval_env:
        config_lib.require(key in fields, f"eval_env.{key}",
                           f"unknown field of {config.env_name}; known fields: {', '.join(sorted(fields))}")
    base = envs.registry.resolve(config.env_name, config.env, parse=True)
    try:
        task = config_lib.merge(base, config.eval_env)
        config_lib.check_finite(task)
        task.validate()
    except ValueError as err:
        raise _from_value_error("eval_env", err) from None
    whole = config_lib.as_mapping(task)
    return dataclasses.replace(config, eval_env=FrozenMapping({k: whole[k] for k in config.eval_env}))


def _from_value_error(prefix: str, err: ValueError) -> ConfigError:
    """'name: constraint' from a component's ValueError as a ConfigError on prefix.name."""
    if isinstance(err, ConfigError):
        return ConfigError(f"{prefix}.{err.field}", err.constraint)
    text = " ".join(str(err).split())
    name, sep, rest = text.partition(": ")
    if sep and name.replace("_", "").replace(".", "").isalnum():
        return ConfigError(f"{prefix}.{name}", rest)
    return ConfigError(prefix, text)


def _build_error(config: RunConfig, err: Exception) -> ConfigError:
    """A failure to build the task as one line on the env field it comes from (else `env`).

    Model files are the usual culprit: a missing, unreadable or malformed MJCF file, or one
    without a body/joint/site the task looks up, is reported on `env.model_path` when the task
    has that field.
    """
    from jaxhum import envs, sim

    fields = config_lib.field_types(envs.REGISTRY[config.env_name].config_cls)
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, (sim.ModelLoadError, sim.NameLookupError)) and "model_path" in fields:
        return ConfigError("env.model_path", text)
    if isinstance(err, ValueError):
        named = _from_value_error("env", err)
        task_field = named.field.partition(".")[2].partition(".")[0].partition("[")[0]
        if task_field in fields:
            return named
    return ConfigError("env", f"{config.env_name} could not be built: {type(err).__name__}: {text}")


def _check_builds(config: RunConfig) -> None:
    """Builds the task now (memoized; loads its model, compiles nothing), so that a bad model
    file or a missing name is bad input reported before anything is written."""
    try:
        build_env(config)
    except Exception as err:  # whatever the task raises, the user gets one line
        raise _build_error(config, err) from None
    if config.eval_env:
        _check_eval_sizes(config)


def _check_eval_sizes(config: RunConfig) -> None:
    """The evaluation world takes the policy the training world trains: same observation, critic
    observation and action sizes."""
    try:
        train_env, eval_env = build_env(config), build_eval_env(config)
    except Exception as err:  # whatever the task raises, the user gets one line
        text = " ".join(str(err).split()) or type(err).__name__
        raise ConfigError("eval_env", f"{config.env_name} could not be built: {type(err).__name__}: {text}") from None
    for size in ("observation_size", "critic_observation_size", "action_size"):
        got, want = getattr(eval_env, size, None), getattr(train_env, size, None)
        config_lib.require(got == want, "eval_env",
                           f"must keep the task's {size} ({want}); these fields make it {got}")

# ----------------------------------------------------------------------------- derived values

SEEDS_FILE = "seeds.json"  # in the directory of a num_seeds > 1 run: its config and seed directories


def seeds_of(config: RunConfig) -> list[int]:
    """The seeds a run trains: seed, seed + 1, ..., seed + num_seeds - 1."""
    return [config.seed + i for i in range(config.num_seeds)]


def seed_run_dirs(config: RunConfig, run_dir: Any) -> list[Any]:
    """Run directory of each seed: run_dir itself for one seed, else run_dir/seed_<S> per seed."""
    import pathlib

    run_dir = pathlib.Path(run_dir)
    if config.num_seeds == 1:
        return [run_dir]
    return [run_dir / f"seed_{s}" for s in seeds_of(config)]


def seed_config(config: RunConfig, seed: int, run_dir: Any) -> RunConfig:
    """The config of one seed of a multi-seed run: a plain one-seed run in its own directory."""
    return dataclasses.replace(config, seed=seed, num_seeds=1, vmap_seeds=RunConfig.vmap_seeds, out_dir=str(run_dir))



def steps_per_iteration(config: RunConfig) -> int:
    """Env steps per training iteration: PPO's num_envs * unroll_length, off-policy's num_envs."""
    return trainer_config(config).env_steps_per_iteration


def num_iterations(config: RunConfig) -> int:
    """Iterations needed to reach num_timesteps (rounded up)."""
    return max(1, math.ceil(config.num_timesteps / steps_per_iteration(config)))


def every_iterations(config: RunConfig, env_steps: int) -> int:
    """A cadence in env steps as a whole number of iterations (>= 1; 0 stays 0 = never)."""
    if env_steps == 0:
        return 0
    return max(1, round(env_steps / steps_per_iteration(config)))


# ----------------------------------------------------------------------------- building


def build_env(config: RunConfig) -> Any:
    """The task: `jaxhum.envs.make(env_name, **env)` (memoized: an Env is immutable)."""
    return _make_env(config.env_name, FrozenMapping(config.env))


@functools.lru_cache(maxsize=4)
def _make_env(env_name: str, overrides: FrozenMapping) -> Any:
    from jaxhum import envs

    return envs.make(env_name, **overrides)


def build_eval_env(config: RunConfig) -> Any:
    """The world the run is evaluated in: `env` with `eval_env`'s fields (a validated config:
    each holds its whole value); `build_env(config)` itself when `eval_env` is empty."""
    if not config.eval_env:
        return build_env(config)
    return _make_env(config.env_name, FrozenMapping({**config.env, **config.eval_env}))


def build_trainer(config: RunConfig, env: Any | None = None, mesh: Any = None) -> Any:
    """The run's `Trainer` (builds the env unless given): `jaxhum.rl.train.make_train` for PPO,
    `jaxhum.rl.off_policy.make_off_policy_train` for SAC and TD3 (the same interface).

    With num_seeds > 1 the trainer's states and results have a leading seed axis. `mesh`
    (`jaxhum.rl.parallel.make_mesh(config.devices)`) spreads it over devices (PPO only); loading
    a run needs none.
    """
    from jaxhum.rl import off_policy, train

    make = train.make_train if config.algorithm == "ppo" else off_policy.make_off_policy_train
    return make(env if env is not None else build_env(config), trainer_config(config), num_iterations(config),
                num_seeds=config.num_seeds, mesh=mesh, vmap_seeds=config.vmap_seeds,
                eval_env=build_eval_env(config) if config.eval_env else None)


@dataclasses.dataclass(frozen=True)
class PolicyArchitecture:
    """What export needs to rebuild the actor from its weights (layers hidden_<i>, then output).

    Attributes:
      hidden_sizes: hidden layer widths.
      activation: 'swish' or 'tanh'.
      normalize_observations: whether the observation normalizer is applied first.
    """

    hidden_sizes: tuple[int, ...]
    activation: str
    normalize_observations: bool


def policy_architecture(config: RunConfig) -> PolicyArchitecture:
    """The run's actor: PPO's policy net, or the off-policy actor. Its deterministic action is
    tanh of the first action_size outputs either way (SAC: tanh(loc); TD3: tanh(output))."""
    if config.algorithm == "ppo":
        return PolicyArchitecture(tuple(config.ppo.policy_hidden_sizes), config.ppo.activation,
                                  config.ppo.normalize_observations)
    return PolicyArchitecture(tuple(config.off_policy.actor_hidden_sizes), config.off_policy.activation,
                              config.off_policy.normalize_observations)


def train_keys(config: RunConfig) -> tuple[Any, Any]:
    """(train_key, eval_key): one split of the seed; each has one purpose.

    With num_seeds > 1 each is stacked over the seeds (leading axis K), every seed's keys being
    those of the one-seed run with that seed.
    """
    import jax
    import jax.numpy as jnp

    pairs = [jax.random.split(jax.random.key(s)) for s in seeds_of(config)]
    if config.num_seeds == 1:
        return pairs[0][0], pairs[0][1]
    return jnp.stack([p[0] for p in pairs]), jnp.stack([p[1] for p in pairs])


def state_template(trainer: Any, config: RunConfig) -> Any:
    """Shapes and dtypes of the TrainState (`jax.eval_shape` of init: nothing is computed).

    Memoized on the fields that can change the state's structure, since tracing the env's reset
    takes seconds; `trainer` must be the one built for `config`.
    """
    import jax

    key = dataclasses.replace(config, **{f: getattr(RunConfig(), f) for f in RESUMABLE_FIELDS})
    if key not in _TEMPLATES:
        while len(_TEMPLATES) >= 4:
            _TEMPLATES.pop(next(iter(_TEMPLATES)))
        _TEMPLATES[key] = jax.eval_shape(trainer.init, train_keys(config)[0])
    return _TEMPLATES[key]


_TEMPLATES: dict[RunConfig, Any] = {}  # shape-determining config -> TrainState template


def make_policy(trainer: Any, state: Any, deterministic: bool = True,
                matmul_precision: str | None = "highest") -> Callable[..., Any]:
    """`policy(obs, key=None) -> action` from a TrainState (normalizer included), jitted.

    Only `state.policy_params` and `state.normalizer` are read. `matmul_precision` is JAX's
    `default_matmul_precision` inside the policy: 'highest' (the default) computes every matmul in
    full float32, as the exported policy does on a robot; None keeps the backend's default (on a
    GPU, TF32-like passes, ~1e-3 away in the action).
    """
    import contextlib

    import jax

    from jaxhum.rl.train import policy_bundle

    params = policy_bundle(state)

    def policy_fn(p: Any, obs: Any, key: Any) -> Any:
        with contextlib.nullcontext() if matmul_precision is None else jax.default_matmul_precision(matmul_precision):
            return trainer.policy_fn(p, obs, key)

    if deterministic:
        act = jax.jit(lambda p, obs: policy_fn(p, obs, None))

        def policy(obs: Any, key: Any = None) -> Any:
            del key  # the deterministic action needs none
            return act(params, obs)
    else:
        sample = jax.jit(policy_fn)

        def policy(obs: Any, key: Any = None) -> Any:
            if key is None:
                raise ValueError("key: a stochastic policy (deterministic=False) needs a PRNG key")
            return sample(params, obs, key)

    return policy


# ----------------------------------------------------------------------------- schema


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of RunConfig: every field a run may set (a dotted override
    `ppo.num_envs=64` sets `properties.ppo.properties.num_envs`), with its type, RunConfig's
    default and its description.

    `env` holds fields of the config of the task `env_name` names: each registered task's
    config is `$defs/<task>`, and the `allOf` rules apply the one of the given `env_name`.
    """
    from jaxhum import envs

    schema = config_lib.json_schema(RunConfig)
    schema["properties"]["env_name"]["enum"] = sorted(envs.REGISTRY)
    tasks = {name: config_lib.json_schema(envs.REGISTRY[name].config_cls) for name in sorted(envs.REGISTRY)}
    schema["properties"]["env"]["description"] += " Its fields: $defs/<env_name>."
    rules = [{"if": {"properties": {"env_name": {"const": name}}, "required": ["env_name"]},
              "then": {"properties": {"env": {"$ref": f"#/$defs/{name}"}}}} for name in tasks]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "allOf": rules, "$defs": tasks}

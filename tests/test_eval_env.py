"""`RunConfig.eval_env`: a run evaluated in another world than the one it trains in (issue 27)."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxhum import config as config_lib
from jaxhum.config import ConfigError
from jaxhum.rl import PPOConfig
from jaxhum.run import config as run_config
from tests import helpers

PPO = PPOConfig(num_envs=4, unroll_length=4, num_minibatches=2, num_updates_per_batch=1, num_eval_envs=3,
                policy_hidden_sizes=(8,), value_hidden_sizes=(8,))
SLIDER = run_config.RunConfig(env_name=helpers.SLIDER_TASK, env={"episode_length": 10}, ppo=PPO,
                              num_timesteps=32, log_every=16, eval_every=16, checkpoint_every=16)


@pytest.fixture(scope="module", autouse=True)
def _slider_task():
    with helpers.slider_task():
        yield


def test_the_trainer_evaluates_in_the_eval_world_and_trains_in_env():
    config = run_config.validate(dataclasses.replace(SLIDER, eval_env={"episode_length": 4}))
    assert run_config.build_env(config).episode_length == 10
    assert run_config.build_eval_env(config).episode_length == 4
    trainer = run_config.build_trainer(config)
    state = trainer.init(run_config.train_keys(config)[0])
    metrics = trainer.evaluate(state, jax.random.key(0))
    np.testing.assert_allclose(metrics["eval/episode_length"], 4.0)  # the slider never terminates
    plain = run_config.validate(SLIDER)
    assert run_config.build_eval_env(plain) is run_config.build_env(plain)
    metrics = run_config.build_trainer(plain).evaluate(state, jax.random.key(0))
    np.testing.assert_allclose(metrics["eval/episode_length"], 10.0)


def test_eval_env_is_validated_completed_and_stable():
    config = config_lib.apply_overrides(SLIDER, ["eval_env.episode_length=4"])
    valid = run_config.validate(config)
    assert valid.eval_env == {"episode_length": 4}
    assert run_config.validate(valid) == valid
    assert run_config.validate(config_lib.from_json(run_config.RunConfig, config_lib.to_json(valid))) == valid
    assert "eval_env" in run_config.RESUMABLE_FIELDS  # the training math does not depend on it


@pytest.mark.parametrize("override, field, words", [
    ("eval_env.nope=1", "eval_env.nope", "unknown field of slider"),
    ("eval_env.episode_length=0", "eval_env.episode_length", "positive integer"),
    ("eval_env.episode_length=ten", "eval_env.episode_length", "expected"),
])
def test_bad_eval_env_is_one_line_naming_the_field(override, field, words):
    with pytest.raises(ConfigError) as err:
        run_config.validate(config_lib.apply_overrides(SLIDER, [override]))
    assert err.value.field == field and words in str(err.value) and "\n" not in str(err.value)


def test_an_eval_world_with_other_sizes_is_refused():
    import experiments.joystick as joystick

    config = config_lib.apply_overrides(joystick.get_config("cpu"), ["eval_env.observation_history=3"])
    with pytest.raises(ConfigError, match=r"eval_env: must keep the task's observation_size \(76\)"):
        run_config.validate(config)


def test_a_run_and_its_loaded_copy_are_judged_in_the_eval_world(tmp_path):
    from jaxhum.run import checkpoint, log
    from jaxhum.run import main as run_main

    config = dataclasses.replace(SLIDER, eval_env={"episode_length": 4})
    status = run_main.run_cli(lambda preset=None: config, ["--out", str(tmp_path / "run"), "--progress", "none"],
                              name="slider", presets=("cpu",))
    assert status == 0
    rows = [r for r in log.read_metrics(tmp_path / "run") if "eval/episode_length" in r]
    assert rows and all(r["eval/episode_length"] == 4.0 for r in rows)
    run = checkpoint.load_run(tmp_path / "run")
    assert run.env.episode_length == 4 and run.config.env["episode_length"] == 10

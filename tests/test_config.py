"""Config helpers and command-line validation: every error is one line, exit status 2, no writes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any, Literal

import pytest

from experiments import humanoid_run
from jaxhum import config as config_lib
from jaxhum import envs
from jaxhum.config import ConfigError, FrozenMapping
from jaxhum.run import config as run_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class _Inner:
    lr: float = 1e-3
    sizes: tuple[int, ...] = (32, 32)
    use_norm: bool = True
    pair: tuple[int, float] = (1, 2.0)


@dataclasses.dataclass(frozen=True)
class _Outer:
    name: str = "a"
    count: int = 4
    maybe: int | None = None
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    extra: Mapping[str, Any] = FrozenMapping()


# ----------------------------------------------------------------------------- helpers


def test_overrides_coerce_from_field_types():
    base = _Outer()
    new = config_lib.apply_overrides(
        base,
        ["count=5e3", "inner.lr=1", "inner.sizes=64,64,8", "inner.use_norm=false", "maybe=7",
         "inner.pair=(3, 4.5)", "name=b", "extra.episode_length=500", "extra.weights.ctrl=-0.5"],
    )
    assert new.count == 5000 and isinstance(new.count, int)
    assert new.inner.lr == 1.0 and isinstance(new.inner.lr, float)
    assert new.inner.sizes == (64, 64, 8)
    assert new.inner.use_norm is False
    assert new.maybe == 7 and new.inner.pair == (3, 4.5) and new.name == "b"
    assert new.extra == {"episode_length": 500, "weights": {"ctrl": -0.5}}
    assert base == _Outer()  # never mutated
    assert config_lib.apply_overrides(new, {"maybe": "none"}).maybe is None
    assert config_lib.apply_overrides(new, {"inner.sizes": [1, 2]}).inner.sizes == (1, 2)
    # A key already in a mapping keeps its type.
    assert config_lib.apply_overrides(new, ["extra.episode_length=20"]).extra["episode_length"] == 20
    assert hash(new)  # frozen configs stay hashable


@pytest.mark.parametrize(
    "override, field, message",
    [
        ("nope=1", "nope", "unknown field; known fields: count, extra, inner, maybe, name"),
        ("inner.nope=1", "inner.nope", "unknown field; known fields: lr, pair, sizes, use_norm"),
        ("count=abc", "count", "expected an int"),
        ("count=1.5", "count", "expected an int"),
        ("inner.lr=fast", "inner.lr", "expected a float"),
        ("inner.use_norm=maybe", "inner.use_norm", "expected a bool"),
        ("inner.sizes=a,b", "inner.sizes[0]", "expected an int"),
        ("inner.pair=1,2,3", "inner.pair", "expected 2 values"),
        ("inner=3", "inner", "is a group of fields"),
        ("count.x=3", "count", "has no field"),
        ("novalue", "novalue", "field=value"),
        ("a..b=1", "a..b", "empty field name"),
    ],
)
def test_override_errors_name_the_field(override, field, message):
    with pytest.raises(ConfigError) as info:
        config_lib.apply_overrides(_Outer(), [override])
    assert info.value.field == field
    assert message in str(info.value)
    assert str(info.value).startswith(f"{field}: ") and "\n" not in str(info.value)


def test_json_round_trip_and_diff():
    cfg = config_lib.apply_overrides(_Outer(), ["extra.k=1", "inner.sizes=8"])
    data = config_lib.to_json(cfg)
    assert data["inner"]["sizes"] == [8] and data["extra"] == {"k": 1}
    assert config_lib.from_json(_Outer, data) == cfg
    assert config_lib.loads(_Outer, config_lib.dumps(cfg)) == cfg
    assert config_lib.from_json(_Outer(), {"count": 9}).count == 9  # partial onto a base
    assert config_lib.diff(_Outer(), cfg) == [("extra.k", None, 1), ("inner.sizes", [32, 32], [8])]
    with pytest.raises(ConfigError, match="^bogus: unknown field"):
        config_lib.from_json(_Outer, {"bogus": 1})
    with pytest.raises(ConfigError, match="^count: expected an int"):
        config_lib.from_json(_Outer, {"count": "x"})


@pytest.mark.parametrize(
    "value, tp, expected",
    [
        ("5e7", int, 50_000_000), (" 12 ", int, 12), (3.0, int, 3), ("on", bool, True), ("off", bool, False),
        ("1e-4", float, 1e-4), (3, float, 3.0), ("64,64", tuple[int, ...], (64, 64)),
        ("(0.5, 1)", tuple[float, float], (0.5, 1.0)), ([1, 2], tuple[float, float], (1.0, 2.0)),
        ("none", int | None, None), ("7", int | None, 7), ("b", Literal["a", "b"], "b"),
        ({"a": "1"}, Mapping[str, float], {"a": 1.0}), ('{"k": [1]}', Mapping[str, Any], {"k": (1,)}),
        ({"lr": "2"}, _Inner, _Inner(lr=2.0)),
    ],
)
def test_coerce_parses_text_and_json(value, tp, expected):
    assert config_lib.coerce(value, tp, "f") == expected


@pytest.mark.parametrize(
    "value, tp, expected",
    [(3, float, 3.0), ([1, 2], tuple[float, float], (1.0, 2.0)), (None, int | None, None),
     ({"lr": 2}, _Inner, _Inner(lr=2.0)),
     ({"a": "x"}, Mapping[str, float], {"a": "x"})],  # a mapping's values are their owner's to check
)
def test_strict_coerce_takes_python_values(value, tp, expected):
    assert config_lib.coerce(value, tp, "f", strict=True) == expected


@pytest.mark.parametrize(
    "value, tp, message",
    [
        ("5", int, "f: expected int, got str '5'"), (2.5, int, "f: expected int, got float 2.5"),
        (1, bool, "f: expected bool, got int 1"), (True, float, "f: expected float, got bool True"),
        ("0.5,1", tuple[float, float], "f: expected tuple[float, float], got str '0.5,1'"),
        ((1, "x"), tuple[float, float], "f[1]: expected float, got str 'x'"),
        ("none", int | None, "f: expected int | None, got str 'none'"), (3, _Inner, "f: expected _Inner, got int 3"),
        ({"lr": "2"}, _Inner, "f.lr: expected float, got str '2'"),
    ],
)
def test_strict_coerce_refuses_text_in_python_words(value, tp, message):
    with pytest.raises(ConfigError) as info:
        config_lib.coerce(value, tp, "f", strict=True)
    assert str(info.value) == message


def test_merge_puts_partial_groups_and_mappings_over_the_base():
    base = config_lib.apply_overrides(_Outer(), ["extra.a=1", "inner.lr=0.5"])
    new = config_lib.merge(base, {"inner": {"use_norm": False}, "extra": {"b": 2}, "count": 7}, strict=True)
    assert new.inner == _Inner(lr=0.5, use_norm=False) and new.extra == {"a": 1, "b": 2} and new.count == 7
    assert config_lib.merge(base, {"inner": {"sizes": "8,8"}}).inner.sizes == (8, 8)  # text is parsed...
    with pytest.raises(ConfigError, match=r"^inner\.sizes: expected tuple\[int, \.\.\.\], got str '8,8'$"):
        config_lib.merge(base, {"inner": {"sizes": "8,8"}}, strict=True)  # ... unless strict
    with pytest.raises(ConfigError, match=r"^inner\.bogus: unknown field; known fields: lr, pair, sizes, use_norm$"):
        config_lib.merge(base, {"inner": {"bogus": 1}})
    assert base == config_lib.apply_overrides(_Outer(), ["extra.a=1", "inner.lr=0.5"])  # never mutated


def test_check_finite_names_the_path():
    config_lib.check_finite(_Outer())
    with pytest.raises(ConfigError, match=r"^inner\.pair\[1\]: must be a finite number, got nan$"):
        config_lib.check_finite(_Outer(inner=_Inner(pair=(1, float("nan")))))
    with pytest.raises(ConfigError, match=r"^extra\.w: must be a finite number, got -inf$"):
        config_lib.check_finite(_Outer(extra=FrozenMapping(w=-float("inf"))))


def test_json_schema_gives_types_defaults_and_descriptions():
    props = config_lib.json_schema(_Outer)["properties"]
    assert props["count"] == {"type": "integer", "default": 4}
    assert props["maybe"] == {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    pair = {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "number"}], "minItems": 2, "maxItems": 2}
    assert props["inner"]["properties"]["pair"] == {**pair, "default": [1, 2.0]}
    assert props["inner"]["properties"]["sizes"] == {"type": "array", "items": {"type": "integer"}, "default": [32, 32]}
    assert props["extra"] == {"type": "object", "additionalProperties": {}, "default": {}}
    run = run_config.json_schema()
    assert set(run["properties"]) == set(config_lib.field_types(run_config.RunConfig))
    for group in (run["properties"], run["properties"]["ppo"]["properties"]):
        assert all(field.get("description") for field in group.values())  # every field is documented
    assert run["properties"]["ppo"]["properties"]["lr_schedule"]["description"].startswith("'constant'; 'linear' decay")
    for name, spec in envs.REGISTRY.items():
        assert set(run["$defs"][name]["properties"]) == set(config_lib.field_types(spec.config_cls))


def test_validate_types_catches_values_set_in_code():
    config_lib.validate_types(_Outer())
    with pytest.raises(ConfigError, match="^count: expected an int"):
        config_lib.validate_types(_Outer(count="4"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^inner\.sizes\[1\]: expected an int"):
        config_lib.validate_types(_Outer(inner=_Inner(sizes=(1, 2.5))))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- run configs


@pytest.mark.parametrize("preset", humanoid_run.PRESETS)
def test_presets_are_valid_and_round_trip(preset):
    cfg = humanoid_run.get_config(preset)
    validated = run_config.validate(cfg)
    assert validated == dataclasses.replace(cfg, env=validated.env)  # validation only completes env
    assert run_config.validate(validated) == validated
    for config in (cfg, validated):
        assert config_lib.from_json(run_config.RunConfig, config_lib.to_json(config)) == config
    assert humanoid_run.get_config(preset) == cfg  # built fresh each call, nothing leaks


def test_task_configs_and_run_env_share_one_merge():
    """`envs.make_config` (Python values) and a run's `env` (text) take the same path to the same config."""
    from experiments import walk as walk_experiment
    from jaxhum.envs import walk
    from jaxhum.envs.terms import randomization

    task = envs.make_config("walk", reward_weights={"energy": 0.0}, randomization={"friction": (0.5, 1)})
    assert task.reward_weights == {**walk.DEFAULT_REWARD_WEIGHTS, "energy": 0.0}  # merged into the defaults
    assert task.randomization == randomization.RandomizationConfig(friction=(0.5, 1.0))  # the others: defaults
    run = config_lib.apply_overrides(walk_experiment.get_config("cpu"),
                                     ["env.reward_weights.energy=0", "env.randomization.friction=0.5,1"])
    run = run_config.validate(run, build=False)
    assert run.env["reward_weights"] == task.reward_weights
    assert run.env["randomization"] == config_lib.as_mapping(task.randomization)
    assert envs.make_config("walk", **run.env).randomization == task.randomization
    with pytest.raises(ValueError, match=r"^randomization\.friction: expected tuple\[float, float\] \| None, got str"):
        envs.make_config("walk", randomization={"friction": "0.5,1"})  # Python callers give Python values
    with pytest.raises(ValueError, match=r"^episode_seconds: expected float, got str '20'$"):
        envs.make_config("walk", episode_seconds="20")


def test_a_saved_config_with_a_partial_env_loads_and_is_completed():
    """config.json of older runs: env holds only the overrides, stop_at_eval_return is "inf"."""
    data = {**config_lib.to_json(run_config.RunConfig(env_name="walk")), "stop_at_eval_return": "inf",
            "env": {"episode_seconds": 5.0, "randomization": {"friction": [0.5, 1.0]}}}
    cfg = config_lib.from_json(run_config.RunConfig, data)
    assert cfg.env == {"episode_seconds": 5.0, "randomization": {"friction": (0.5, 1.0)}}
    full = run_config.validate(cfg, build=False)
    task = envs.make_config("walk", episode_seconds=5.0, randomization={"friction": (0.5, 1.0)})
    assert full.env == config_lib.as_mapping(task) and full.env["randomization"]["obs_lag"] == 0
    assert full.stop_at_eval_return is None and hash(full)
    assert config_lib.from_json(run_config.RunConfig, json.loads(config_lib.dumps(full))) == full


@pytest.mark.parametrize("text, stored", [("inf", None), ("none", None), ("null", None), ("-250.5", -250.5),
                                          ("100", 100.0)])
def test_stop_at_eval_return_is_a_number_or_null_in_json(text, stored):
    cfg = config_lib.apply_overrides(humanoid_run.get_config("cpu"), [f"stop_at_eval_return={text}"])
    cfg = run_config.validate(cfg, build=False)
    assert cfg.stop_at_eval_return == stored
    written = json.loads(config_lib.dumps(cfg))["stop_at_eval_return"]
    assert written == stored and (written is None or type(written) is float)
    assert config_lib.loads(run_config.RunConfig, config_lib.dumps(cfg)) == cfg
    assert run_config.RunConfig().stop_at_eval_return is None


def test_non_finite_stop_at_eval_return_other_than_inf_is_refused():
    for value in ("nan", "-inf"):
        cfg = config_lib.apply_overrides(humanoid_run.get_config("cpu"), [f"stop_at_eval_return={value}"])
        with pytest.raises(ConfigError, match=f"^stop_at_eval_return: must be a finite number or inf, got {value}"):
            run_config.validate(cfg, build=False)


def test_gpu_preset_matches_brax_humanoid_settings():
    """brax's humanoid networks and returns; a lighter SGD, larger steps and entropy cost (see the preset)."""
    ppo = humanoid_run.get_config("gpu").ppo
    assert ppo.num_envs >= 2048 and ppo.policy_hidden_sizes == (32,) * 4 and ppo.value_hidden_sizes == (256,) * 5
    assert (ppo.discounting, ppo.reward_scaling, ppo.clip_epsilon) == (0.97, 0.1, 0.3)
    assert (ppo.learning_rate, ppo.entropy_cost, ppo.compute_dtype) == (1.5e-3, 2e-2, "bfloat16")
    assert (ppo.num_updates_per_batch, ppo.num_minibatches, ppo.minibatch_size) == (2, 8, 40960)
    cpu = humanoid_run.get_config("cpu").ppo
    assert (cpu.learning_rate, cpu.entropy_cost, cpu.compute_dtype) == (3e-4, 1e-3, "float32")


def test_default_preset_follows_backend():
    import jax

    expected = "gpu" if jax.default_backend() != "cpu" else "cpu"
    assert humanoid_run.get_config() == humanoid_run.get_config(expected)


def test_derived_cadences_round_to_whole_iterations():
    cfg = config_lib.apply_overrides(
        humanoid_run.get_config("cpu"),
        {"ppo.num_envs": 4, "ppo.unroll_length": 5, "num_timesteps": 101, "checkpoint_every": 50, "eval_every": 0},
    )
    assert run_config.steps_per_iteration(cfg) == 20
    assert run_config.num_iterations(cfg) == 6  # rounded up
    assert run_config.every_iterations(cfg, 50) == 2  # 2.5 rounds to 2
    assert run_config.every_iterations(cfg, 1) == 1  # at least one iteration
    assert run_config.every_iterations(cfg, 0) == 0


# ----------------------------------------------------------------------------- command line


CLI_ERRORS = [
    (["--set", "ppo.bogus=1"], "ppo.bogus", "unknown field; known fields: activation"),
    (["--set", "bogus=1"], "bogus", "unknown field; known fields: algorithm, checkpoint_every, compile_cache"),
    (["--num-envs", "many"], "ppo.num_envs", "expected an int"),
    (["--set", "ppo.learning_rate=fast"], "ppo.learning_rate", "expected a float"),
    (["--num-envs", "0"], "ppo.num_envs", "must be a positive integer"),
    (["--num-timesteps", "-5"], "num_timesteps", "must be a positive integer"),
    (["ppo.unroll_length=0"], "ppo.unroll_length", "must be a positive integer"),
    (["--set", "ppo.num_minibatches=0"], "ppo.num_minibatches", "must be a positive integer"),
    (["--set", "keep_checkpoints=0"], "keep_checkpoints", "must be a positive integer"),
    (["--checkpoint-every", "0"], "checkpoint_every", "must be a positive integer"),
    (["--set", "log_every=0"], "log_every", "must be a positive integer"),
    (["--set", "eval_every=-1"], "eval_every", "must be >= 0"),
    (["--num-envs", "5", "ppo.num_minibatches=3"], "ppo.num_minibatches", "must divide num_envs * unroll_length"),
    (["--set", "ppo.discounting=1.5"], "ppo.discounting", "must be in [0, 1]"),
    (["--set", "ppo.activation=relu"], "ppo.activation", "must be one of"),
    (["--set", "ppo.policy_hidden_sizes=32,x"], "ppo.policy_hidden_sizes[1]", "expected an int"),
    (["--set", "env_name=walker"], "env_name", "must be one of backflip, balance, humanoid_run, joystick"),
    (["--set", "env.bogus=1"], "env.bogus", "unknown field of humanoid_run; known fields:"),
    (["--set", "env.episode_length=0"], "env.episode_length", "must be a positive integer"),
    (["--set", "env.episode_length=long"], "env.episode_length", "expected an int"),
    (["--set", "env.reward_weights.bogus=1"], "env.reward_weights", "unknown reward term"),
    (["--set", "seed"], "seed", "field=value"),
    (["--resume", "DIR_MISSING"], "--resume", "does not exist"),
    (["--resume", "DIR_EMPTY"], "--resume", "holds no complete checkpoint"),
    (["--preset", "cpu", "--resume", "DIR_EMPTY"], "--preset", "cannot be combined with --resume"),
    (["--preset", "tpu"], "argument --preset", "invalid choice"),
    (["--no-such-flag"], "unrecognized arguments", "--no-such-flag"),
]


@pytest.mark.parametrize("argv, field, message", CLI_ERRORS, ids=[" ".join(a) for a, _, _ in CLI_ERRORS])
def test_cli_errors_are_one_line_exit_2_and_write_nothing(argv, field, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "DIR_EMPTY").mkdir()
    argv = ["--out", str(tmp_path / "run")] + argv if "--resume" not in argv else argv
    if "--preset" not in argv and "--resume" not in argv:
        argv = ["--preset", "cpu"] + argv
    status = humanoid_run.main(argv)
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {field}") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR_EMPTY"]  # nothing written
    assert not any((tmp_path / "DIR_EMPTY").iterdir())


def test_cli_refuses_non_empty_out_dir(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    assert humanoid_run.main(["--preset", "cpu", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith("error: out_dir: ")
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def test_print_config_shows_overrides(capsys):
    assert humanoid_run.main(["--preset", "cpu", "--seed", "3", "ppo.learning_rate=1e-4", "--print-config"]) == 0
    out = capsys.readouterr().out
    cfg = config_lib.loads(run_config.RunConfig, out[out.index("{"):])
    assert cfg.seed == 3 and cfg.ppo.learning_rate == 1e-4 and cfg.out_dir.endswith("-s3")


def test_print_config_shows_every_task_field(capsys):
    from experiments import walk as walk_experiment
    from jaxhum.envs import walk

    assert walk_experiment.main(["--preset", "cpu", "--print-config"]) == 0
    out = capsys.readouterr().out
    env = json.loads(out[out.index("{"):])["env"]
    given = walk_experiment.get_config("cpu").env
    assert set(env) == set(config_lib.field_types(walk.WalkConfig))
    assert env == config_lib.to_json(envs.make_config("walk", **given))
    defaults = config_lib.to_json(walk.WalkConfig())
    assert {k: v for k, v in env.items() if k not in given} == {k: v for k, v in defaults.items() if k not in given}
    assert env["randomization"]["obs_noise_type"] == "uniform"  # groups in full too


def test_cli_error_in_a_real_process_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.humanoid_run", "--preset", "cpu", "--num-envs", "0",
         "--out", str(tmp_path / "run")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: ppo.num_envs: must be a positive integer, got 0"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "run").exists()

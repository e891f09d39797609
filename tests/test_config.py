"""Config helpers and command-line validation: every error is one line, exit status 2, no writes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

from experiments import humanoid_run
from jaxhum import config as config_lib
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
    assert run_config.validate(cfg) == cfg
    assert config_lib.from_json(run_config.RunConfig, config_lib.to_json(cfg)) == cfg
    assert humanoid_run.get_config(preset) == cfg  # built fresh each call, nothing leaks


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
    (["--set", "bogus=1"], "bogus", "unknown field; known fields: checkpoint_every, devices, env, env_name"),
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
    (["--set", "env_name=walker"], "env_name", "must be one of balance, humanoid_run, joystick, walk"),
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

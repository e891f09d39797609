"""Bad command lines, across every experiment module: one line, exit 2, nothing written.

Every row runs `experiments.<name>.main(argv)` in-process with `run_loop.train` and
`run_config.build_trainer` replaced by functions that fail the test, so nothing is trained or
compiled (building the task, i.e. loading its model, is part of validation and does happen).
Each row asserts exit status 2, exactly one stderr line `error: <field>...` with the expected
constraint, no traceback, no run directory (`--out`) and no `runs/` in the working directory.
A few rows run as real processes (`python -m experiments.<name>`) to prove the exit status and
the absence of a traceback end to end.

The generic rows (flags, types, ranges, nan/inf, unknown fields, resume misuse) run for every
module found in `experiments/`; humanoid_run adds rows about its model file.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pathlib
import pkgutil
import subprocess
import sys
from typing import Any, NamedTuple

import numpy as np
import pytest

import experiments
from jaxhum import config as config_lib
from jaxhum import envs
from jaxhum.run import checkpoint
from jaxhum.run import config as run_config
from jaxhum.run import loop as run_loop
from jaxhum.run import main as run_main

REPO = pathlib.Path(__file__).resolve().parents[1]


def _experiment_modules() -> dict[str, Any]:
    modules = {}
    for info in pkgutil.iter_modules(experiments.__path__):
        module = importlib.import_module(f"experiments.{info.name}")
        if callable(getattr(module, "main", None)) and callable(getattr(module, "get_config", None)):
            modules[info.name] = module
    return modules


EXPERIMENTS = _experiment_modules()


class Row(NamedTuple):
    argv: tuple[str, ...]  # RESUME_OK / RESUME_EMPTY / MISSING / OUT are replaced per test
    field: str  # what the error line starts with after "error: "
    message: str  # a part of the constraint


def _task_fields(module: Any) -> tuple[str | None, str | None, bool]:
    """Of the experiment's task config: a float field, a reward term, whether it has episode_length."""
    config = module.get_config()
    config_cls = envs.REGISTRY[config.env_name].config_cls
    defaults = config_cls()
    floats = [f.name for f in dataclasses.fields(config_cls) if type(getattr(defaults, f.name)) is float]
    weights = getattr(defaults, "reward_weights", None) or {}
    return (floats[0] if floats else None), (min(weights) if weights else None), hasattr(defaults, "episode_length")


def _generic_rows(module: Any) -> list[Row]:
    env_float, term, has_episode_length = _task_fields(module)
    presets = tuple(getattr(module, "PRESETS", ("cpu", "gpu")))
    rows = [
        # types
        Row(("--num-envs", "many"), "ppo.num_envs", "expected an int"),
        Row(("--seed", "1.5"), "seed", "expected an int"),
        Row(("ppo.learning_rate=fast",), "ppo.learning_rate", "expected a float"),
        Row(("ppo.normalize_observations=maybe",), "ppo.normalize_observations", "expected a bool"),
        Row(("ppo.policy_hidden_sizes=32,x",), "ppo.policy_hidden_sizes[1]", "expected an int"),
        Row(("ppo",), "ppo", "field=value"),
        Row(("ppo=3",), "ppo", "is a group of fields"),
        # ranges
        Row(("--num-envs", "0"), "ppo.num_envs", "must be a positive integer"),
        Row(("--num-timesteps", "-5"), "num_timesteps", "must be a positive integer"),
        Row(("--checkpoint-every", "0"), "checkpoint_every", "must be a positive integer"),
        Row(("eval_every=-1",), "eval_every", "must be >= 0"),
        Row(("--seed", "-1"), "seed", "must be in [0, 4294967295]"),
        Row(("--num-seeds", "0"), "num_seeds", "must be a positive integer"),
        Row(("--num-seeds", "two"), "num_seeds", "expected an int"),
        Row(("devices=99",), "devices", "must be 0 (all devices) or a count in 1.."),
        Row(("devices=-1",), "devices", "must be 0 (all devices) or a count in 1.."),
        Row(("ppo.discounting=1.5",), "ppo.discounting", "must be in [0, 1]"),
        Row(("ppo.num_minibatches=7", "--num-envs", "5", "ppo.unroll_length=3"), "ppo.num_minibatches",
            "must divide num_envs * unroll_length = 15"),
        Row(("ppo.activation=relu",), "ppo.activation", "must be one of"),
        # nan and inf
        Row(("ppo.learning_rate=inf",), "ppo.learning_rate", "must be a finite number, got inf"),
        Row(("ppo.learning_rate=nan",), "ppo.learning_rate", "must be a finite number, got nan"),
        Row(("ppo.entropy_cost=-inf",), "ppo.entropy_cost", "must be a finite number, got -inf"),
        Row(("ppo.max_grad_norm=Infinity",), "ppo.max_grad_norm", "must be a finite number, got inf"),
        Row(("stop_at_eval_return=nan",), "stop_at_eval_return", "must be a finite number or inf, got nan"),
        Row(("--num-timesteps", "inf"), "num_timesteps", "expected an int"),
        # unknown fields and values
        Row(("bogus=1",), "bogus", "unknown field; known fields:"),
        Row(("--set", "ppo.bogus=1"), "ppo.bogus", "unknown field; known fields:"),
        Row(("env.bogus=1",), "env.bogus", "unknown field of"),
        Row(("env_name=no_such_task",), "env_name", "must be one of"),
        Row(("--preset", "tpu"), "argument --preset", "invalid choice"),
        Row(("--no-such-flag",), "unrecognized arguments", "--no-such-flag"),
        # paths
        Row(("--out", "OUT_NONEMPTY"), "out_dir", "already exists and is not empty"),
        Row(("--out", "A_FILE"), "out_dir", "is a file, not a directory"),
        # resume misuse
        Row(("--resume", "MISSING"), "--resume", "does not exist or is not a directory"),
        Row(("--resume", "A_FILE"), "--resume", "does not exist or is not a directory"),
        Row(("--resume", "RESUME_EMPTY"), "--resume", "holds no complete checkpoint"),
        Row(("--resume", "RESUME_OK", "--preset", presets[0]), "--preset", "cannot be combined with --resume"),
        Row(("--resume", "RESUME_OK", "--num-envs", "8"), "ppo.num_envs", "cannot be changed on resume"),
        Row(("--resume", "RESUME_OK", "--seed", "5"), "seed", "cannot be changed on resume"),
        Row(("--resume", "RESUME_OK", "--num-seeds", "2"), "num_seeds", "cannot be changed on resume"),
        Row(("--resume", "RESUME_OK", "ppo.learning_rate=1e-4"), "ppo.learning_rate", "cannot be changed on resume"),
        Row(("--resume", "RESUME_OK", "env.episode_length=7"), "env.episode_length", "cannot be changed on resume"),
        Row(("--resume", "RESUME_OK", "--out", "OUT"), "out_dir", "continues in its own directory"),
        Row(("--resume", "RESUME_OK", "--num-timesteps", "0"), "num_timesteps", "must be a positive integer"),
        Row(("--resume", "RESUME_OK", "stop_at_eval_return=nan"), "stop_at_eval_return", "must be a finite number"),
    ]
    if has_episode_length:
        rows += [Row(("env.episode_length=0",), "env.episode_length", "must be a positive integer")]
    if env_float is not None:
        rows += [
            Row((f"env.{env_float}=nan",), f"env.{env_float}", "must be a finite number, got nan"),
            Row((f"env.{env_float}=-inf",), f"env.{env_float}", "must be a finite number, got -inf"),
        ]
    if term is not None:
        rows += [
            Row((f"env.reward_weights.{term}=nan",), f"env.reward_weights.{term}", "must be a finite number, got nan"),
            Row((f"env.reward_weights.{term}=inf",), f"env.reward_weights.{term}", "must be a finite number, got inf"),
            Row(("env.reward_weights.bogus=1",), "env.reward_weights", "unknown reward term"),
        ]
    return rows


# Model files that humanoid_run must refuse on env.model_path (written into the test's tmp dir).
BAD_MODELS = {
    "not_xml.xml": ("hello, not xml\n", "malformed MJCF: syntax error"),
    "empty.xml": ("", "malformed MJCF: no element found"),
    "truncated.xml": ("<mujoco><worldbody><body name='torso'>", "malformed MJCF"),
    "not_mjcf.xml": ("<scene><box/></scene>", "malformed MJCF: XML Error: Unrecognized XML model type"),
    # MuJoCo also reads URDF: an empty robot loads, and the task's name lookup refuses it.
    "empty_urdf.xml": ("<robot name='r'/>", "no body named 'torso'; known body names: world"),
    "no_torso.xml": ("<mujoco><worldbody><body name='pelvis'><freejoint/><geom size='.1'/></body>"
                     "</worldbody></mujoco>", "no body named 'torso'; known body names: pelvis, world"),
}

HUMANOID_RUN_ROWS = [
    Row(("env.model_path=MODELS/missing.xml",), "env.model_path", "missing.xml: MJCF file not found"),
    Row(("env.model_path=MODELS",), "env.model_path", "is a directory, not an MJCF file"),
    *(Row((f"env.model_path=MODELS/{name}",), "env.model_path", message) for name, (_, message) in BAD_MODELS.items()),
    # A run whose model file has gone since it was saved: refused on resume, before anything is written.
    Row(("--resume", "RESUME_GONE_MODEL"), "env.model_path", "gone.xml: MJCF file not found"),
]

CASES = [(name, row) for name, module in EXPERIMENTS.items() for row in _generic_rows(module)]
CASES += [("humanoid_run", row) for row in HUMANOID_RUN_ROWS if "humanoid_run" in EXPERIMENTS]


def test_the_table_is_large_and_covers_every_experiment():
    assert len(CASES) >= 30
    assert {name for name, _ in CASES} == set(EXPERIMENTS) and "humanoid_run" in EXPERIMENTS


# ----------------------------------------------------------------------------- fixtures


def _save_fake_checkpoint(run_dir: pathlib.Path, config: run_config.RunConfig) -> None:
    """A run directory with one complete checkpoint holding `config` (prepare reads only that)."""
    config = dataclasses.replace(config, out_dir=str(run_dir))
    store = checkpoint.CheckpointStore(run_dir)
    try:
        store.save(100, {"x": np.zeros(2, np.float32)}, config_lib.to_json(config), {"iteration": 1})
    finally:
        store.close()


@pytest.fixture(scope="module")
def resume_dirs(tmp_path_factory) -> dict[str, dict[str, pathlib.Path]]:
    """Per experiment: a run with a checkpoint, and (humanoid_run) one whose model file is gone."""
    root = tmp_path_factory.mktemp("resume_dirs")
    out: dict[str, dict[str, pathlib.Path]] = {}
    for name, module in EXPERIMENTS.items():
        out[name] = {"RESUME_OK": root / name / "ok"}
        _save_fake_checkpoint(out[name]["RESUME_OK"], module.get_config())
    if "humanoid_run" in EXPERIMENTS:
        gone = root / "humanoid_run" / "gone_model"
        config = EXPERIMENTS["humanoid_run"].get_config()
        config = dataclasses.replace(config, env=config_lib.FrozenMapping(model_path=str(root / "gone.xml")))
        _save_fake_checkpoint(gone, config)
        out["humanoid_run"]["RESUME_GONE_MODEL"] = gone
    return out


def _listing(path: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _workspace(tmp_path: pathlib.Path, resume: dict[str, pathlib.Path]) -> dict[str, str]:
    """Placeholders of the table -> paths in this test's tmp dir (which is also the cwd)."""
    (tmp_path / "RESUME_EMPTY").mkdir()
    (tmp_path / "OUT_NONEMPTY").mkdir()
    (tmp_path / "OUT_NONEMPTY" / "keep.txt").write_text("mine")
    (tmp_path / "A_FILE").write_text("a file")
    models = tmp_path / "MODELS"
    models.mkdir()
    for name, (text, _) in BAD_MODELS.items():
        (models / name).write_text(text)
    places = {"MISSING": tmp_path / "missing", "OUT": tmp_path / "out", "MODELS": models,
              "RESUME_EMPTY": tmp_path / "RESUME_EMPTY", "OUT_NONEMPTY": tmp_path / "OUT_NONEMPTY",
              "A_FILE": tmp_path / "A_FILE", **resume}
    return {k: str(v) for k, v in places.items()}


def _substitute(argv: tuple[str, ...], places: dict[str, str]) -> list[str]:
    out = []
    for arg in argv:
        for key in sorted(places, key=len, reverse=True):  # RESUME_OK before OUT, etc.
            if arg == key or arg.startswith(f"{key}/") or f"={key}" in arg:
                arg = arg.replace(key, places[key], 1)
                break
        out.append(arg)
    return out


def _command(row: Row, places: dict[str, str]) -> list[str]:
    argv = _substitute(row.argv, places)
    if "--resume" not in argv and "--out" not in argv:
        argv = ["--out", places["OUT"], *argv]
    return argv


def _assert_refused(status: int, err: str, row: Row, places: dict[str, str], tmp_path: pathlib.Path,
                    before: list[str]) -> None:
    assert status == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith((f"error: {row.field}: ", f"error: {row.field} ")), err
    assert row.message in err, err
    assert not pathlib.Path(places["OUT"]).exists()
    assert not (tmp_path / "runs").exists()
    assert _listing(tmp_path) == before  # nothing created, moved or removed, resume dirs included


def _no_training(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("bad input reached training")


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name, row", CASES, ids=[f"{n}:{' '.join(r.argv)}" for n, r in CASES])
def test_bad_command_line_is_one_line_exit_2_and_writes_nothing(name, row, resume_dirs, tmp_path, monkeypatch, capfd):
    places = _workspace(tmp_path, resume_dirs[name])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_main, "train", _no_training)
    monkeypatch.setattr(run_loop, "build_trainer", _no_training)
    before = _listing(tmp_path)
    resume_before = {k: _listing(pathlib.Path(v)) for k, v in resume_dirs[name].items()}
    capfd.readouterr()
    status = EXPERIMENTS[name].main(_command(row, places))
    err = capfd.readouterr().err
    _assert_refused(status, err, row, places, tmp_path, before)
    assert {k: _listing(pathlib.Path(v)) for k, v in resume_dirs[name].items()} == resume_before


SUBPROCESS_ROWS = [
    Row(("ppo.learning_rate=inf",), "ppo.learning_rate", "must be a finite number, got inf"),
    Row(("--resume", "MISSING"), "--resume", "does not exist"),
    Row(("--resume", "RESUME_OK", "--num-envs", "8"), "ppo.num_envs", "cannot be changed on resume"),
]
# Each experiment once and each row at least twice (the rows take turns): a process costs seconds
# of imports, and the in-process rows above already run every row on every experiment.
SUBPROCESS_CASES = [(name, SUBPROCESS_ROWS[i % len(SUBPROCESS_ROWS)]) for i, name in enumerate(sorted(EXPERIMENTS))]
SUBPROCESS_CASES += [("humanoid_run", Row(("env.model_path=MODELS/not_mjcf.xml",), "env.model_path", "malformed MJCF"))]


@pytest.mark.parametrize("name, row", SUBPROCESS_CASES, ids=[f"{n}:{' '.join(r.argv)}" for n, r in SUBPROCESS_CASES])
def test_bad_command_line_in_a_real_process(name, row, resume_dirs, tmp_path, subprocess_env):
    places = _workspace(tmp_path, resume_dirs[name])
    before = _listing(tmp_path)
    env = {**subprocess_env, "PYTHONPATH": os.pathsep.join([str(REPO), subprocess_env.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", f"experiments.{name}", *_command(row, places)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.stdout == ""
    _assert_refused(proc.returncode, proc.stderr, row, places, tmp_path, before)


def test_inf_stop_at_eval_return_is_still_accepted(capsys, tmp_path):
    """inf on the command line means 'never stop early', as the default None does (null in JSON)."""
    for name, module in EXPERIMENTS.items():
        assert module.main(["--out", str(tmp_path / name), "stop_at_eval_return=inf", "--print-config"]) == 0
        out = capsys.readouterr().out
        cfg = config_lib.loads(run_config.RunConfig, out)
        assert cfg.stop_at_eval_return is None and json.loads(out)["stop_at_eval_return"] is None
    assert not any(tmp_path.iterdir())


def test_resume_completes_a_saved_partial_env(resume_dirs):
    """RESUME_OK holds the experiment's env overrides only (as older versions saved them): a resume
    runs the task's whole config, and a task field given the value it has is no change."""
    for name, module in EXPERIMENTS.items():
        saved = module.get_config()
        argv = ["--resume", str(resume_dirs[name]["RESUME_OK"])]
        prepared = run_main.prepare(module.get_config, argv, name, module.PRESETS)
        assert prepared.config.env == config_lib.as_mapping(envs.make_config(saved.env_name, **saved.env))
        key, value = next((k, v) for k, v in prepared.config.env.items() if type(v) in (int, float))
        again = run_main.prepare(module.get_config, [*argv, f"env.{key}={value}"], name, module.PRESETS)
        assert again.config == prepared.config


def test_python_api_refuses_non_finite_task_values():
    with pytest.raises(ValueError, match=r"^reset_noise_scale: must be a finite number, got nan$"):
        envs.make_config("humanoid_run", reset_noise_scale=float("nan"))
    with pytest.raises(ValueError, match=r"^reward_weights.alive: must be a finite number, got inf$"):
        envs.make_config("humanoid_run", reward_weights={"alive": float("inf")})

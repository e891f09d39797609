"""The command line every experiment module shares: `python -m experiments.NAME`.

An experiment module only supplies `get_config(preset)` and calls `run_cli`:

    def main(argv=None) -> int:
        return run_cli(get_config, argv, name="humanoid_run", presets=PRESETS)

`prepare` parses and checks a command line (compiling and writing nothing); `run_cli` then hands
the checked config to the training loop (`jaxhum.run.loop.train`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import errno
import pathlib
import sys
from collections.abc import Callable, Sequence

from jaxhum import config as config_lib
from jaxhum.config import ConfigError
from jaxhum.run import checkpoint as checkpoint_lib
from jaxhum.run import finetune
from jaxhum.run import log as runlog
from jaxhum.run.checkpoint import saved_config
from jaxhum.run.cli import ArgumentParser, UsageError
from jaxhum.run.config import (
    RESUMABLE_FIELDS,
    SEEDS_FILE,
    RunConfig,
    seed_run_dirs,
    validate,
)
from jaxhum.run.loop import RunResult, train

# Convenience flags: each is a plain alias of an override on one config field.
_FLAG_FIELDS = {
    "seed": "seed",
    "num_envs": "ppo.num_envs",
    "num_timesteps": "num_timesteps",
    "out": "out_dir",
    "checkpoint_every": "checkpoint_every",
    "num_seeds": "num_seeds",
}


def make_parser(name: str, presets: Sequence[str]) -> argparse.ArgumentParser:
    """The command line shared by every experiment module."""
    parser = ArgumentParser(
        prog=f"python -m experiments.{name}",
        description=f"Train {name} with PPO. Any config field can be set with --set field=value "
        "(or a bare field=value), e.g. ppo.learning_rate=1e-4 num_timesteps=2000000.",
    )
    parser.add_argument("--preset", choices=list(presets), help="config preset (default: by JAX backend)")
    parser.add_argument("--seed", type=str, help="alias of seed=S")
    parser.add_argument("--num-envs", type=str, help="alias of ppo.num_envs=N (for algorithm=sac|td3 also "
                        "off_policy.num_envs=N)")
    parser.add_argument("--num-timesteps", type=str, help="alias of num_timesteps=T")
    parser.add_argument("--out", type=str, help="run directory (alias of out_dir=DIR)")
    parser.add_argument("--checkpoint-every", type=str, help="alias of checkpoint_every=N (env steps)")
    parser.add_argument("--num-seeds", type=str, help="alias of num_seeds=K: seeds S..S+K-1 in one program, "
                        "each in DIR/seed_<S>")
    parser.add_argument("--resume", type=str, metavar="DIR", help="continue the run in DIR from its newest checkpoint")
    parser.add_argument("--progress", choices=runlog.PROGRESS_MODES, default="auto",
                        help="progress output (auto: a bar on a terminal unless CI is set)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field (repeatable)")
    parser.add_argument("positional", nargs="*", metavar="FIELD=VALUE", help="same as --set")
    parser.add_argument("--print-config", action="store_true", help="print the config as JSON and exit")
    return parser


def _overrides_from_args(args: argparse.Namespace) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for flag, field in _FLAG_FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides[field] = value
    overrides.update(config_lib.parse_overrides(list(args.overrides) + list(args.positional)))
    return overrides


def default_run_dir(config: RunConfig) -> pathlib.Path:
    """runs/<env_name>/<UTC timestamp>-s<seed> (-s<first>-<last seed> with num_seeds > 1)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    seeds = f"{config.seed}" if config.num_seeds == 1 else f"{config.seed}-{config.seed + config.num_seeds - 1}"
    return pathlib.Path("runs") / config.env_name / f"{stamp}-s{seeds}"


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A checked command line: the config to run, where, and whether it resumes."""

    config: RunConfig
    run_dir: pathlib.Path
    resume: bool
    progress: str
    print_only: bool


def prepare(
    get_config: Callable[[str | None], RunConfig],
    argv: Sequence[str] | None,
    name: str,
    presets: Sequence[str],
) -> Prepared:
    """Parses and checks a command line, and builds its task; compiles and writes nothing.

    Building the task (loading its model) is part of the check: a bad `env.model_path` is
    refused here. The same holds for `--resume` (the saved config's task is built).

    Raises:
      ConfigError / CheckpointError / UsageError: bad input, one line each.
    """
    args = make_parser(name, presets).parse_intermixed_args(argv)
    overrides = _overrides_from_args(args)
    if args.resume is None:
        config, run_dir = _new_run(get_config(args.preset), overrides)
    else:
        if args.preset is not None:
            raise ConfigError("--preset", "cannot be combined with --resume (the run's saved config is used)")
        config, run_dir = _resumed_run(pathlib.Path(args.resume), overrides)
    return Prepared(config, run_dir, args.resume is not None, args.progress, args.print_config)


def _new_run(config: RunConfig, overrides: dict[str, str]) -> tuple[RunConfig, pathlib.Path]:
    """The checked config of a new run (out_dir set) and its run directory, which must be empty."""
    config = config_lib.apply_overrides(config, overrides)
    if config.algorithm != "ppo" and "ppo.num_envs" in overrides and "off_policy.num_envs" not in overrides:
        # --num-envs sets the env count of the algorithm the run trains with.
        config = config_lib.apply_overrides(config, {"off_policy.num_envs": overrides["ppo.num_envs"]})
    config = validate(config)
    run_dir = pathlib.Path(config.out_dir) if config.out_dir else default_run_dir(config)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("out_dir", f"{run_dir} is a file, not a directory; choose another --out")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError("out_dir", f"{run_dir} already exists and is not empty; "
                          f"continue it with --resume {run_dir} or choose another --out")
    if config.init_from:  # shapes checked against the source checkpoint; compiles nothing
        finetune.check_config(config)
    return dataclasses.replace(config, out_dir=str(run_dir)), run_dir


def _resumed_run(resume_dir: pathlib.Path, overrides: dict[str, str]) -> tuple[RunConfig, pathlib.Path]:
    """The saved config of the run in `resume_dir` with `overrides` (RESUMABLE_FIELDS only), checked."""
    if not resume_dir.is_dir():
        raise ConfigError("--resume", f"{resume_dir} does not exist or is not a directory")
    saved = _saved_group_config(resume_dir) if (resume_dir / SEEDS_FILE).is_file() else None
    for seed_dir in seed_run_dirs(saved, resume_dir) if saved is not None else [resume_dir]:
        store = checkpoint_lib.CheckpointStore(seed_dir, read_only=True)
        try:
            if not store.steps():
                raise ConfigError("--resume", f"{seed_dir} holds no complete checkpoint "
                                  f"(nothing under {seed_dir / checkpoint_lib.CHECKPOINT_DIR})")
            if saved is None:
                saved = saved_config(store)
        finally:
            store.close()
    saved = validate(saved, build=False)  # complete: an old run's partial env gets the task's defaults
    config = config_lib.apply_overrides(saved, overrides)
    for field, old, new in config_lib.diff(saved, config):
        top = field.split(".")[0]
        if top not in RESUMABLE_FIELDS:
            raise ConfigError(field, f"cannot be changed on resume (saved {old!r}, given {new!r}); "
                              f"allowed on resume: {', '.join(RESUMABLE_FIELDS)}")
    config = validate(config)
    if "out_dir" in overrides and pathlib.Path(overrides["out_dir"]).resolve() != resume_dir.resolve():
        raise ConfigError("out_dir", "a resumed run continues in its own directory (copy the directory to fork a run)")
    return dataclasses.replace(config, out_dir=str(resume_dir)), resume_dir


def _saved_group_config(run_dir: pathlib.Path) -> RunConfig:
    """The config of a num_seeds > 1 run from its seeds.json."""
    try:
        data = runlog.read_json(run_dir / SEEDS_FILE)["config"]
        return config_lib.from_json(RunConfig, data)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError("--resume", f"{run_dir / SEEDS_FILE} is unreadable ({type(err).__name__}: {err})") from None


def _print_summary(result: RunResult) -> None:
    if "seeds" in result.summary:
        for seed_summary in result.summary["seeds"]:
            run_dir = pathlib.Path(seed_summary["run_dir"])
            _print_summary(dataclasses.replace(result, run_dir=run_dir, summary=seed_summary))
        return
    s = result.summary
    lines = [f"run directory: {result.run_dir}",
             f"env steps: {s['step']} of {s['num_timesteps']}, wall {s['wall_s']:.1f} s"]
    if s.get("eval/episode_reward") is not None:
        length = s.get("eval/episode_length", float("nan"))
        lines.append(f"final eval return: {s['eval/episode_reward']:.2f} (episode length {length:.0f})")
    if s.get("best_eval_return") is not None:
        lines.append(f"best eval return: {s['best_eval_return']:.2f} at step {s['best_step']}")
    if s.get("train/steps_per_second") is not None:
        lines.append(f"training speed: {s['train/steps_per_second']:,.0f} env steps/s")
    lines.append(f"load the policy: jaxhum.run.checkpoint.load_policy({str(result.run_dir)!r})")
    print("\n".join(lines), flush=True)


def _has_checkpoint(run_dir: pathlib.Path) -> bool:
    store = checkpoint_lib.CheckpointStore(run_dir, read_only=True)
    try:
        return bool(store.steps())
    except Exception:  # only decides whether to suggest --resume
        return False
    finally:
        store.close()


def _os_error_line(err: OSError) -> str:
    code = errno.errorcode.get(err.errno, "") if err.errno is not None else ""
    return " ".join(f"{err.filename or 'run'}: {code + ': ' if code else ''}{err.strerror or err}".split())


def run_cli(
    get_config: Callable[[str | None], RunConfig],
    argv: Sequence[str] | None = None,
    name: str = "experiment",
    presets: Sequence[str] = ("cpu", "gpu"),
) -> int:
    """Entry point of `python -m experiments.<name>`; returns the process exit status.

    Bad input prints `error: <field>: <constraint>` on stderr and returns 2, before anything
    is compiled or written. A write that fails while training (a checkpoint save hitting a full
    disk or a permission error) prints one `error:` line naming the path and returns 1; the
    checkpoints saved before are intact and `--resume` continues from the newest.
    """
    try:
        prepared = prepare(get_config, argv, name, presets)
    except (ConfigError, checkpoint_lib.CheckpointError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if prepared.print_only:
        print(config_lib.dumps(prepared.config))
        return 0
    try:
        result = train(prepared.config, prepared.run_dir, resume=prepared.resume, progress=prepared.progress)
    except (checkpoint_lib.CheckpointSaveError, OSError) as err:
        # A fault of the machine (disk full, permission denied), not of the input: status 1.
        # Nothing saved before is lost; the run continues from its newest checkpoint once fixed.
        where = f"; continue with --resume {prepared.run_dir}" if _has_checkpoint(prepared.run_dir) else ""
        text = err if isinstance(err, checkpoint_lib.CheckpointError) else _os_error_line(err)
        print(f"error: {text}{where}", file=sys.stderr)
        return 1
    except checkpoint_lib.CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted twice; stopped without a final checkpoint (the previous ones are intact)",
              file=sys.stderr)
        return 130
    if result.exit_code == 0:
        _print_summary(result)
    return result.exit_code

"""Copies a trained run without its training envs: `python benchmarks/slim_run.py SRC DST [--best]`.

A checkpoint holds the state of every training env (8192 jh1 envs: ~4 GB), which evaluation,
export, sim-to-sim and the robustness sweep never read. This writes DST, a run directory whose one
checkpoint (SRC's newest, or its best with `--best`, at the same step) keeps SRC's policy, value
network, optimiser, normalizers, iteration and curriculum, with freshly reset envs of a 2-env
config (`ppo.num_envs=2`, `ppo.num_minibatches=1`; nothing else changes, so the task, the
networks and the policy are SRC's). `jaxhum.run.checkpoint.load_run(DST)` then loads in seconds on
any machine; resuming DST trains a 2-env run, not SRC's. DST also gets SRC's metrics.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import shutil
import sys

from jaxhum import config as config_lib
from jaxhum.run import checkpoint
from jaxhum.run import config as run_config

KEPT = ("policy_params", "value_params", "opt_state", "normalizer", "critic_normalizer", "iteration", "curriculum")


def slim(src: pathlib.Path, dst: pathlib.Path, best: bool = False) -> int:
    """Writes the slim copy of `src` into `dst` (must not exist); returns the checkpoint's step."""
    store = checkpoint.CheckpointStore(src, read_only=True)
    try:
        config = checkpoint.saved_config(store, best=best)
        restored = store.restore(template=run_config.state_template(run_config.build_trainer(config), config),
                                 best=best, only=tuple(f".{name}" for name in KEPT))  # the envs stay unread
    finally:
        store.close()
    small = dataclasses.replace(config, ppo=dataclasses.replace(config.ppo, num_envs=2, num_minibatches=1))
    trainer = run_config.build_trainer(run_config.validate(small))
    fresh = trainer.init(run_config.train_keys(small)[0])
    state = fresh.replace(**{name: getattr(restored.state, name) for name in KEPT})
    dst.mkdir(parents=True)
    out = checkpoint.CheckpointStore(dst, keep=1)
    try:
        meta = {k: v for k, v in restored.meta.items() if k not in ("format", "step", "time")}
        meta["slimmed_from"] = str(src)
        out.save(restored.step, state, config_lib.to_json(small), meta)
    finally:
        out.close()
    (dst / "config.json").write_text(json.dumps(config_lib.to_json(small), indent=2))
    if (src / "metrics.jsonl").exists():
        shutil.copy(src / "metrics.jsonl", dst / "metrics.jsonl")
    return restored.step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=pathlib.Path)
    parser.add_argument("dst", type=pathlib.Path)
    parser.add_argument("--best", action="store_true", help="copy the best checkpoint instead of the newest")
    args = parser.parse_args(argv)
    if args.dst.exists():
        parser.error(f"dst: {args.dst} exists; give a new directory")
    try:
        step = slim(args.src, args.dst, args.best)
    except checkpoint.CheckpointError as err:
        print(f"error: src: {err}", file=sys.stderr)
        return 2
    print(f"{args.dst}: step {step} of {args.src}, 2 envs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

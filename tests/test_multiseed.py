"""num_seeds: K seeds in one jitted program, each a complete run directory of its own.

One module fixture trains, on the one-joint MJX slider of tests/helpers.py registered as a task
(4 envs, 4-step unrolls, 20-step episodes, 6 iterations, so every env's first episode is
truncated and autoreset mid-run; checkpoints at iterations 3 and 6):
  - seeds 3 and 4 as two separate one-seed runs (one shared trainer), one evaluation at the end;
  - seeds 3 and 4 in one program with the seeds in a loop (vmap_seeds=false), likewise;
  - seeds 3 and 4 in one program side by side (vmap, the default), through the command line,
    without evaluation (nothing here reads it).
The loop program must equal the separate runs bit for bit (checkpoints, metrics, evaluation).
vmap differs in the last bits on the CPU (XLA's CPU reductions sum in an order that depends on
how many rows they reduce at once), so its first iteration's metrics agree to a float tolerance
only. Resume of a 2-seed run must be exact, from the newest step every seed directory holds.

Those are properties of the runner and the trainer, the same for every task; the slider compiles
in seconds where each of humanoid_run's three program sets (one seed, loop, vmap) took minutes.
The humanoid itself runs once, as 2 vmapped seeds through the command line with the PPO and task
settings of test_runner.py and the other runner tests: its seed directories must be complete
one-seed runs that `checkpoint.load_run` restores (the humanoid's MJX state, sliced per seed).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil

import helpers
import jax
import numpy as np
import pytest

from experiments import humanoid_run
from jaxhum import config as config_lib
from jaxhum.run import checkpoint
from jaxhum.run import config as run_config
from jaxhum.run import log as runlog
from jaxhum.run import loop as run_loop
from jaxhum.run import main as run_main

SEEDS = (3, 4)
ITERATION = 16  # env steps per iteration: 4 envs x 4 steps
TOTAL = 6 * ITERATION
TINY = (  # the PPO and task settings of test_runner.py / test_resume.py: shared compiles
    "--preset", "cpu", "--num-envs", "4", "--num-timesteps", str(TOTAL), "--checkpoint-every", str(3 * ITERATION),
    "ppo.unroll_length=4", "ppo.num_minibatches=2", "ppo.num_updates_per_batch=1",
    "ppo.policy_hidden_sizes=8", "ppo.value_hidden_sizes=8", "ppo.num_eval_envs=2",
    "env.episode_length=20", f"log_every={ITERATION}",
)
SLIDER = (*TINY, f"env_name={helpers.SLIDER_TASK}")  # the same settings, on the slider
EVALUATE = f"eval_every={TOTAL}"  # one evaluation, at the end
CHECKPOINTS = (3 * ITERATION, TOTAL)
VOLATILE = ("wall_s", "train/steps_per_second")  # timing, not training


def _config(*extra: str) -> run_config.RunConfig:
    return run_main.prepare(humanoid_run.get_config, [*SLIDER, EVALUATE, *extra], "humanoid_run", ("cpu",)).config


def _rows(run_dir: pathlib.Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in runlog.read_metrics(run_dir)]


def _leaves(state) -> list[np.ndarray]:
    def plain(x):
        return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x

    return [np.asarray(plain(x)) for x in jax.tree.leaves(state)]


def _assert_same_state(a, b) -> None:
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module", autouse=True)
def _slider_task():
    with helpers.slider_task():
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiseed")
    single = _config()
    trainer = run_config.build_trainer(single)
    for seed in SEEDS:
        config = dataclasses.replace(single, seed=seed)
        run_loop.train(config, root / f"separate_{seed}", progress="none", trainer=trainer)
    loop_config = _config("--seed", str(SEEDS[0]), "--num-seeds", "2", "vmap_seeds=false")
    loop_trainer = run_config.build_trainer(loop_config)
    loop = run_loop.train(loop_config, root / "loop", progress="none", trainer=loop_trainer)
    # vmap through the command line: flags, directory layout and printed summary end to end.
    code = _vmap_main(SLIDER, root / "vmap")
    assert code == 0
    return root, loop, loop_config, loop_trainer


def _vmap_main(settings: tuple[str, ...], out: pathlib.Path) -> int:
    return humanoid_run.main([*settings, "eval_every=0", "--seed", str(SEEDS[0]), "--num-seeds", "2",
                              "--out", str(out), "--progress", "none"])


@pytest.fixture(scope="module")
def humanoid_vmap(tmp_path_factory) -> pathlib.Path:
    """humanoid_run's 2 vmapped seeds through the command line (the runner tests' tiny settings)."""
    out = tmp_path_factory.mktemp("multiseed_humanoid") / "vmap"
    assert _vmap_main(TINY, out) == 0
    return out


# humanoid_run's 2-seed program takes ~3.5 min to compile on 2 cores: full tier (`pytest --full`);
# the slider's run checks the same directory layout on every run.
@pytest.mark.parametrize("task", [pytest.param("humanoid_run", marks=pytest.mark.full), helpers.SLIDER_TASK])
def test_seed_directories_are_complete_one_seed_runs(task, request):
    root, loop, _, _ = request.getfixturevalue("trained")
    vmap = request.getfixturevalue("humanoid_vmap") if task == "humanoid_run" else root / "vmap"
    group = runlog.read_json(vmap / run_config.SEEDS_FILE)
    assert group["seed_run_dirs"] == [f"seed_{s}" for s in SEEDS]
    assert (group["config"]["num_seeds"], group["config"]["env_name"]) == (2, task)
    for seed in SEEDS:
        seed_dir = vmap / f"seed_{seed}"
        saved = config_lib.from_json(run_config.RunConfig, runlog.read_json(seed_dir / "config.json"))
        assert (saved.seed, saved.num_seeds, saved.out_dir) == (seed, 1, str(seed_dir))
        assert (seed_dir / "eval_summary.json").is_file() and list(seed_dir.glob("events.out.tfevents.*"))
        loaded = checkpoint.load_run(seed_dir)  # the loader of any one-seed run, unchanged
        assert (loaded.step, loaded.config.seed, loaded.env.name) == (TOTAL, seed, task)
    assert [s["run_dir"] for s in loop.summary["seeds"]] == [str(root / "loop" / f"seed_{s}") for s in SEEDS]


def test_seeds_in_a_loop_equal_separate_runs_bit_for_bit(trained):
    root = trained[0]
    for seed in SEEDS:
        separate, together = root / f"separate_{seed}", root / "loop" / f"seed_{seed}"
        for step in CHECKPOINTS:
            _assert_same_state(checkpoint.restore(separate, step)[0], checkpoint.restore(together, step)[0])
        assert _rows(separate) == _rows(together)
        assert sum(row["train/episodes_finished"] for row in _rows(separate)) > 0  # autoresets compared too
        eval_a = {k: v for k, v in runlog.read_json(separate / "eval_summary.json").items() if k.startswith("eval/")}
        eval_b = {k: v for k, v in runlog.read_json(together / "eval_summary.json").items() if k.startswith("eval/")}
        assert eval_a == eval_b and "eval/episode_reward" in eval_a


def test_seeds_side_by_side_match_separate_runs_to_float_tolerance(trained):
    root = trained[0]
    for seed in SEEDS:
        first_separate = _rows(root / f"separate_{seed}")[0]
        first_vmap = _rows(root / "vmap" / f"seed_{seed}")[0]
        assert first_separate.keys() == first_vmap.keys()
        for key, value in first_separate.items():
            np.testing.assert_allclose(first_vmap[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def test_resume_of_two_seeds_is_exact_from_the_newest_common_step(trained, tmp_path):
    root, _, loop_config, loop_trainer = trained
    resumed = tmp_path / "loop"
    shutil.copytree(root / "loop", resumed)
    # As if killed between the two seeds' final saves: seed 3 holds step 96, seed 4 only 48.
    shutil.rmtree(resumed / f"seed_{SEEDS[1]}" / checkpoint.CHECKPOINT_DIR / str(TOTAL))
    for seed in SEEDS:
        (resumed / f"seed_{seed}" / "eval_summary.json").unlink()
    prepared = run_main.prepare(humanoid_run.get_config, ["--resume", str(resumed)], "humanoid_run", ("cpu",))
    assert dataclasses.replace(prepared.config, out_dir="") == dataclasses.replace(loop_config, out_dir="")
    result = run_loop.train(prepared.config, resumed, resume=True, progress="none", trainer=loop_trainer)
    assert result.exit_code == 0 and result.step == TOTAL
    for seed in SEEDS:
        original, again = root / "loop" / f"seed_{seed}", resumed / f"seed_{seed}"
        _assert_same_state(checkpoint.restore(original, TOTAL)[0], checkpoint.restore(again, TOTAL)[0])
        assert _rows(original) == _rows(again)
        assert json.loads((again / "eval_summary.json").read_text())["step"] == TOTAL

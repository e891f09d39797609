"""Shared fixtures, and one persistent JAX compilation cache for the whole test run."""

import os

import pytest

# Test files in order of their time in a cold run on a 2-core CI machine (slowest first; measured,
# see the commit that set this order). xdist (`--dist loadfile --no-loadscope-reorder` in
# pyproject.toml) hands whole files to its workers in collection order, so the longest files
# start first and the short ones fill in at the end; by default xdist would order the files by
# how many tests they hold, which put the slowest files (few tests each) last, on one worker
# while the other sat idle. Files not listed run after these, in their usual order.
# test_runner.py goes first although test_envs.py takes longer: its smoke run compiles the tiny
# humanoid_run programs that test_jobs, test_finetune and test_save_faults then load from the cache.
SLOWEST_FIRST = (
    "test_runner.py", "test_envs.py", "test_parallel.py", "test_after_training.py", "test_multiseed.py",
    "test_jobs.py", "test_balance.py", "test_randomization.py", "test_walk.py", "test_finetune.py",
    "test_joystick.py", "test_nonfinite.py", "test_asymmetric_critic.py", "test_robustness.py",
    "test_curriculum.py", "test_rl_train.py", "test_resume.py", "test_bad_input.py", "test_save_faults.py",
    "test_robots.py", "test_checkpoint.py",
)


# The quick tier (`pytest -m quick`, under 5 minutes on 2 cores): every module of jaxhum exercised
# at least once, by the cheapest tests that do it. Whole files, or `file::test` (a parametrized
# test's cases all belong). The default run holds these and the rest; `--full` adds the tests
# marked `full` (slow end-to-end repeats of what cheaper tests check: see each one's reason).
QUICK = (
)


def pytest_addoption(parser) -> None:
    parser.addoption("--full", action="store_true",
                     help="also run the full tier: slow end-to-end tests marked `full` (deselected by default)")


def _is_quick(item) -> bool:
    name = item.path.name
    test = item.originalname if hasattr(item, "originalname") else item.name
    return name in QUICK or f"{name}::{test}" in QUICK


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order
    for item in items:
        if _is_quick(item):
            item.add_marker(pytest.mark.quick)
    if not config.getoption("--full"):
        skipped = [item for item in items if item.get_closest_marker("full")]
        if skipped:
            config.hook.pytest_deselected(items=skipped)
            items[:] = [item for item in items if not item.get_closest_marker("full")]


def pytest_configure(config) -> None:
    """Every test process (xdist workers and the subprocesses of `subprocess_env`) shares one
    persistent compilation cache in pytest's cache folder: many test files compile the same tiny
    runs of the same tasks, and on a 2-core CI machine compiling is most of the suite's time."""
    import jax

    cache = config.cache.mkdir("jax_compilation_cache")
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


@pytest.fixture(scope="session")
def subprocess_env(request) -> dict[str, str]:
    """Environment for test subprocesses: CPU JAX sharing one persistent compilation cache.

    The cache lives in pytest's cache folder, so processes that compile the same functions (and
    later test runs) reuse each other's compiles.
    """
    cache = request.config.cache.mkdir("jax_compilation_cache")
    env = dict(os.environ)
    env.update(
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
        JAX_PLATFORMS="cpu",
        CI="1",
    )
    return env

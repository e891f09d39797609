"""Shared fixtures, and one persistent JAX compilation cache for the whole test run."""

import os

import pytest


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

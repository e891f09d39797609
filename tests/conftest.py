"""Shared fixtures."""

import os

import pytest


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

"""GPU memory on demand for the after-training tools.

JAX preallocates 75% of a GPU's memory when it creates the GPU client (at the first device use,
not at `import jax`), so a tool started beside a training process on the same GPU would fail its
first allocations. Each tool's `main` calls `use_memory_on_demand()` first, before anything
touches a device; it is never called at import time, which must not set `os.environ`.
"""

from __future__ import annotations

import os

PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"


def use_memory_on_demand() -> None:
    """Sets XLA_PYTHON_CLIENT_PREALLOCATE=false unless the user has set it (their value stands).

    Takes effect only if no JAX backend exists yet in this process.
    """
    os.environ.setdefault(PREALLOCATE, "false")

"""What one request may ask of the service: the fixed bounds of the API and the operator's limits.

The fixed bounds keep every number the service stores inside SQLite's 64-bit integers and every
seed inside the range the training honours; `Limits` holds what the operator sets on the
command line (`python -m jaxhum.jobs --max-envs ... --allow-path DIR`). Light to import: the command line checks
its flags with it before anything heavy is loaded.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

__all__ = [
    "EXCERPT_CHARS", "INT64_MAX", "INT64_MIN", "ITERATIONS_MAX", "Limits", "SEED_MAX", "TIMESTEPS_MAX", "TOKEN_ENV",
    "cut", "excerpt", "short_input",
]

# jaxhum.run.config.SEED_MAX (not imported: that module pulls in JAX): jax.random.key takes the
# seed modulo 2**32, so a larger seed would train the run of a smaller one.
SEED_MAX = 2**32 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # SQLite's INTEGER; also the bound of integer overrides
# Hard bounds of the request's length fields, whatever the operator allows: far above any real run,
# and num_iterations * env steps per iteration stays far below INT64_MAX.
TIMESTEPS_MAX = 10**15
ITERATIONS_MAX = 10**12
EXCERPT_CHARS = 80  # the most of a client's input an error message quotes
# The environment variable that holds the bearer token (without --token-file); the server does
# not pass it on to the jobs it starts.
TOKEN_ENV = "JAXHUM_JOBS_TOKEN"


@dataclasses.dataclass(frozen=True)
class Limits:
    """The operator's limits on a request, each refused before any process starts.

    Attributes:
      max_body_bytes: request body size; a larger one is refused with 413 (the Content-Length
        header and the bytes actually received are both checked).
      max_overrides: items in a request's `overrides`; more are refused with 413.
      max_envs: the run's `ppo.num_envs` (`off_policy.num_envs` for SAC and TD3; parallel
        environments: memory grows with it); 400 above.
      max_seeds: the run's `num_seeds` (seeds trained in one program); 400 above.
      max_timesteps: the env steps a run trains to (its `num_timesteps` rounded up to whole
        iterations, per seed), on submit and on resume; 400 above.
      allowed_roots: the directories (resolved, absolute) under which a run's `env.model_path`
        and `init_from` must lie (`--allow-path`); empty: the data directory alone. 400 outside.
    """

    max_body_bytes: int = 64 * 1024
    max_overrides: int = 256
    max_envs: int = 65536
    max_seeds: int = 16
    max_timesteps: int = 10**10
    allowed_roots: tuple[str, ...] = ()


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """`repr(value)` for an error message, cut to `limit` characters ('...' marks a cut)."""
    try:
        return cut(repr(value), limit)
    except ValueError:  # an integer too long to write out (Python's int-to-text limit)
        return f"<{type(value).__name__} too long to quote>"


def short_input(value: Any, limit: int = EXCERPT_CHARS) -> Any:
    """A validation error's `input` as a reply may quote it: the value itself when its JSON is
    short, else the first `limit` characters of its JSON text ('...' marks the cut)."""
    try:
        text = json.dumps(value, default=str)
    except ValueError:  # an integer too long to write out
        return f"<{type(value).__name__} too long to quote>"
    return value if len(text) <= limit else cut(text, limit)


def cut(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text`, or its first `limit` characters ending in '...'."""
    return text if len(text) <= limit else text[:limit - 3] + "..."

"""benchmarks/train_vs_brax.py's seed list and medians (pure functions; nothing is trained)."""

from __future__ import annotations

import importlib.util
import math
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "train_vs_brax.py"
_spec = importlib.util.spec_from_file_location("train_vs_brax", _PATH)
train_vs_brax = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_vs_brax)


def test_seed_lists_are_explicit_numbers():
    assert train_vs_brax.parse_seeds("0,1, 7") == [0, 1, 7]
    for bad in ("0,x", "-1", "1,,2", "3,3"):
        with pytest.raises(ValueError, match="seed list"):
            train_vs_brax.parse_seeds(bad)


def _run(wall: float | None, steps: int | None = 1) -> dict:
    return {"reached": wall is not None, "wall_s": wall, "steps": steps}


def test_median_counts_a_missed_target_as_infinitely_slow():
    assert train_vs_brax.median_time([_run(10.0), _run(30.0), _run(None)]) == 30.0
    assert train_vs_brax.median_time([_run(10.0), _run(20.0)]) == 15.0
    assert train_vs_brax.median_time([_run(10.0), _run(None), _run(None)]) == math.inf
    table = train_vs_brax.summary_table(
        {"ours": [_run(10.0, 100), _run(30.0, 300), _run(None, None)], "brax": [_run(100.0, 5)]},
        {"ours": [0, 1, 2], "brax": [0]},
    )
    assert "| ours | 0,1,2 | 2 of 3 | 30.0 | 300 | 0.30 |" in table
    assert "| brax | 0 | 1 of 1 | 100.0 | 5 | 1.00 |" in table

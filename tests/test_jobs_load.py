"""benchmarks/jobs_load.py at a small scale: its accounting of submissions, and one whole run
(20 submissions against the real server). Its figures are timings; none is asserted here."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "jobs_load.py"
_spec = importlib.util.spec_from_file_location("jobs_load", _PATH)
jobs_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jobs_load)


def test_account_finds_lost_duplicated_extra_and_twice_started_jobs():
    submitted = [{"seed": i, "status": 201, "job_id": f"{i:032x}", "seconds": 0.1} for i in range(4)]
    table = [{"job_id": f"{i:032x}", "seed": i, "status": s} for i, s in enumerate(("succeeded", "succeeded",
                                                                                   "queued", "failed"))]
    starts = [f"/data/runs/{i:032x}" for i in (0, 1, 3)]
    good = jobs_load.account(submitted, table, starts)
    assert good["ok"] and good["statuses"] == {"succeeded": 2, "queued": 1, "failed": 1}, good

    for broken, key in (
        ((submitted, table[:3], starts), "lost"),
        ((submitted, [*table, table[0]], starts), "duplicate_rows"),
        ((submitted, [*table, {"job_id": "f" * 32, "seed": 9, "status": "queued"}], starts), "extra"),
        ((submitted, table, [*starts, starts[0]]), "jobs_not_started_exactly_once"),  # ran twice
        ((submitted, table, [*starts, f"/data/runs/{2:032x}"]), "jobs_not_started_exactly_once"),  # queued, ran
        ((submitted, [{**table[0], "seed": 7}, *table[1:]], starts), "wrong_seed"),
        ((submitted, [{**table[0], "status": "running"}, *table[1:]], starts), "still_active"),
    ):
        figures = jobs_load.account(*broken)
        assert figures[key] and not figures["ok"], (key, figures)
    refused = jobs_load.account([*submitted, {"seed": 4, "status": 0, "job_id": None, "seconds": 1.0}], table, starts)
    assert refused["refused"] == {"0": 1} and not refused["ok"]


def test_a_small_run_accounts_for_every_submission(tmp_path):
    out = tmp_path / "jobs.json"
    code = jobs_load.main(["--submissions", "20", "--table", "60", "--health-requests", "10", "--time-limit", "240",
                           "--out", str(out)])
    (entry,) = json.loads(out.read_text())
    figures = entry["figures"]
    assert code == 0 and figures["submissions"]["ok"], figures
    assert figures["submissions"]["accepted"] == figures["submissions"]["rows"] == 20
    assert figures["health"]["rows"] == 60 and figures["stop"]["exit_status"] in (0, -15)
    assert entry["machine"] == jobs_load.MACHINE and set(entry) >= {"date", "commit", "figures"}

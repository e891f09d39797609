"""`python -m jaxhum.falls`: the analysis on hand-built episodes, the command on a tiny balance run
(an untrained policy kicked every 0.1-0.2 s, so it falls within its 1 s episodes), and refusals.

Two MJX compiles: the falls rollout and, to check its fall rate, `jaxhum.evaluate`'s.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from test_after_training import make_run_dir

from jaxhum import envs
from jaxhum.config import FrozenMapping
from jaxhum.run import checkpoint
from jaxhum.run.cli import UsageError
from jaxhum.tools import evaluate, falls

DT = 0.1  # s, the hand-built episodes' control step
T, A = 30, 2
EPISODES = 4


def _episodes():
    """Four hand-built episodes of 3 s (T = 30 steps of 0.1 s); see the expected numbers below.

    0: kicked (0.8 m/s, both feet down) on step 10, i.e. at 1.0 s; down after step 15, i.e. at
       1.6 s; a kick on step 20 comes after the fall and is not counted. Its action is still up
       to the kick, then ramps by 0.5 a step.
    1: falls with no kick on step 20 (2.1 s).
    2: never falls; kicks on step 5 (0.3 m/s, one foot) and step 25 (1.7 m/s, no foot down: its
       2 s run past the episode's end: censored). Its action ramps by 0.1 a step throughout.
    3: kicked on step 2 (0.6 m/s, one foot); falls on step 26 (2.5 s after the kick).
    """
    push, fell = np.zeros((EPISODES, T)), np.zeros((EPISODES, T), bool)
    contacts, action = np.zeros((EPISODES, T, 2)), np.zeros((EPISODES, T, A))
    push[0, 10], contacts[0, 10], push[0, 20] = 0.8, (1, 1), 1.0
    fell[0, 15:] = True
    fell[1, 20:] = True
    push[2, 5], contacts[2, 5], push[2, 25] = 0.3, (1, 0), 1.7
    push[3, 2], contacts[3, 2] = 0.6, (0, 1)
    fell[3, 26:] = True
    steps = np.arange(T)[:, None]
    action[0] = 0.5 * np.maximum(steps - 10, 0)
    action[2] = 0.1 * steps
    ended = np.zeros((EPISODES, T), bool)
    ended[0, 15], ended[1, 20], ended[3, 26] = True, True, True
    command_norm = np.full((EPISODES, T), 0.2)
    command_norm[0, 15] = 0.4
    return push, fell, falls.first_episode_mask(ended), contacts, action, command_norm


def _row(bin, kicks, falls_within_2s, censored, share):
    return {"bin": bin, "kicks": kicks, "falls_within_2s": falls_within_2s, "censored": censored, "share": share}


def test_first_episode_mask_ends_on_the_first_done():
    ended = np.array([[0, 0, 1, 0, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(falls.first_episode_mask(ended), [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])


def test_analyse_against_hand_numbers():
    r = falls.analyse(*_episodes(), dt=DT)
    assert (r["episodes"], r["falls"], r["fall_rate"]) == (4, 3, 0.75)
    assert (r["kicks"], r["kicks_censored"]) == (4, 1)  # the kick after episode 0's fall is not one
    assert r["fallen_episodes"] == [
        {"episode": 0, "fall_s": 1.6, "since_kick_s": 0.6, "kick_magnitude": 0.8, "feet_down_at_kick": 2,
         "command_norm": 0.4},
        {"episode": 1, "fall_s": 2.1, "since_kick_s": None, "kick_magnitude": None, "feet_down_at_kick": None,
         "command_norm": 0.2},
        {"episode": 3, "fall_s": 2.7, "since_kick_s": 2.5, "kick_magnitude": 0.6, "feet_down_at_kick": 1,
         "command_norm": 0.2},
    ]
    assert r["falls_by_time_since_kick"] == {"<0.5 s": 0, "0.5-1 s": 1, "1-2 s": 0, ">2 s": 1, "no kick": 1}
    assert r["kicks_by_magnitude"] == [
        _row("0-0.25", 0, 0, 0, None), _row("0.25-0.5", 1, 0, 0, 0.0), _row("0.5-0.75", 1, 0, 0, 0.0),
        _row("0.75-1.0", 1, 1, 0, 1.0), _row("1.0-1.25", 0, 0, 0, None), _row("1.25-1.5", 0, 0, 0, None),
        _row(">1.5", 1, 0, 1, None),
    ]
    assert r["kicks_by_feet_down"] == [_row("0", 1, 0, 1, None), _row("1", 2, 0, 0, 0.0), _row("2", 1, 1, 0, 1.0)]
    # W = 3 steps. Kicks with both windows inside: episode 0's (before 0, after 0.5) and both of
    # episode 2's (0.1 and 0.1); episode 3's starts too early (step 2 - 3 < 0).
    rx = r["reaction"]
    assert rx["window_s"] == pytest.approx(0.3) and rx["kicks"] == 3
    assert rx["before"] == pytest.approx(0.2 / 3) and rx["after"] == pytest.approx(0.7 / 3)
    assert rx["after_over_before"] == pytest.approx(3.5)


def test_analyse_without_command_and_at_bin_edges():
    """At dt = 0.02 s: a fall 0.5 s after a kick is in the 0.5-1 s bin, one 2.0 s after is not
    'within 2 s'; kicks of exactly 0.25 and 1.5 m/s are in the bins they start; actions all zero:
    no ratio of the action changes."""
    t = 200
    push, fell = np.zeros((2, t)), np.zeros((2, t), bool)
    push[0, 50], fell[0, 74:] = 0.25, True  # (74 + 1 - 50) * 0.02 = 0.5 s
    push[1, 0], fell[1, 99:] = 1.5, True  # (99 + 1 - 0) * 0.02 = 2.0 s
    ended = fell & ~np.roll(fell, 1, axis=1)
    r = falls.analyse(push, fell, falls.first_episode_mask(ended), np.zeros((2, t, 2)), np.zeros((2, t, 1)), None,
                      dt=0.02)
    assert [f["command_norm"] for f in r["fallen_episodes"]] == [None, None]
    assert r["falls_by_time_since_kick"] == {"<0.5 s": 0, "0.5-1 s": 1, "1-2 s": 0, ">2 s": 1, "no kick": 0}
    by_bin = {row["bin"]: row for row in r["kicks_by_magnitude"]}
    assert by_bin["0.25-0.5"]["falls_within_2s"] == 1 and by_bin[">1.5"] == _row(">1.5", 1, 0, 0, 0.0)
    assert r["reaction"]["kicks"] == 1 and r["reaction"]["after_over_before"] is None  # before = after = 0


def test_a_task_without_pushes_is_refused():
    for name in ("walk", "joystick", "humanoid_run"):
        env = types.SimpleNamespace(name=name, config=envs.make_config(name))
        with pytest.raises(UsageError, match=rf"^run_dir: runs/x trains {name} without pushes"):
            falls.check_pushes(env, "runs/x")
    falls.check_pushes(types.SimpleNamespace(name="balance", config=envs.make_config("balance")), "runs/x")


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    kicks = FrozenMapping({"push_interval": (0.1, 0.2)})  # balance's magnitudes, a kick every 5-10 steps
    return make_run_dir(tmp_path_factory.mktemp("falls") / "run", "balance",
                        {"episode_seconds": 1.0, "fall_tilt": 0.5, "randomization": kicks})


@pytest.fixture(scope="module")
def report(run_dir):
    assert falls.main([str(run_dir), "--episodes", str(EPISODES)]) == 0
    return json.loads((run_dir / falls.FALLS_FILE).read_text())


def test_report_is_written_and_consistent(report, run_dir):
    assert {k: report[k] for k in ("run_dir", "task", "checkpoint_step", "seed", "episodes")} == {
        "run_dir": str(run_dir), "task": "balance", "checkpoint_step": 4, "seed": 0, "episodes": EPISODES}
    assert report["kicks"] > 0 and report["nonfinite_episodes"] == 0
    for table in ("kicks_by_magnitude", "kicks_by_feet_down"):
        rows = report[table]
        assert sum(r["kicks"] for r in rows) == report["kicks"]
        assert sum(r["censored"] for r in rows) == report["kicks_censored"]
    assert report["falls"] == len(report["fallen_episodes"]) == sum(report["falls_by_time_since_kick"].values())
    assert 0 <= report["reaction"]["kicks"] <= report["kicks"]
    assert report["fall_rate"] == report["falls"] / EPISODES


@pytest.mark.full(reason="compiles jaxhum.evaluate's rollout too (~50 s); the counts above check the report itself")
def test_falls_are_the_episodes_evaluate_counts(report, run_dir):
    """The same episodes as `jaxhum.evaluate` with the same seed: the same falls."""
    evaluated = evaluate.evaluate_run(checkpoint.load_run(run_dir), EPISODES, seed=0)
    assert report["fall_rate"] == evaluated["fall_rate"]


def test_no_pushes_is_one_line_exit_2(run_dir, monkeypatch, capsys):
    walk = types.SimpleNamespace(env=types.SimpleNamespace(name="walk", config=envs.make_config("walk")))
    monkeypatch.setattr(falls.checkpoint, "load_run", lambda *args, **kwargs: walk)
    (run_dir / falls.FALLS_FILE).unlink(missing_ok=True)
    assert falls.main([str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: run_dir: {run_dir} trains walk without pushes") and "\n" not in err, err
    assert not (run_dir / falls.FALLS_FILE).exists()


@pytest.mark.parametrize(
    "argv, field",
    [
        (["/no/such/run"], "run_dir"),
        (["{run}", "--episodes", "0"], "episodes"),
        (["{run}", "--seed", "-1"], "seed"),
        (["{run}", "--step", "-1"], "step"),
        (["{run}", "--step", "99"], "step"),
        (["{run}", "--no-such-flag"], "arguments"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, field, run_dir, capsys):
    (run_dir / falls.FALLS_FILE).unlink(missing_ok=True)
    assert falls.main([a.format(run=run_dir) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {field}: ") and "\n" not in err, err
    assert not (run_dir / falls.FALLS_FILE).exists()

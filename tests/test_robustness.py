"""`python -m jaxhum.robustness`: the grid sweep on a tiny walk run, and its bad-input errors."""

from __future__ import annotations

import json

import pytest
from test_after_training import make_run_dir

from jaxhum.envs.terms import randomization as R
from jaxhum.tools import robustness


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("robust") / "run", "walk", {"episode_seconds": 0.2})


@pytest.fixture(scope="module")
def swept(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    code = robustness.main([str(run_dir), "--friction", "0.6", "--mass-scale", "1.0", "--push", "0,2.0",
                            "--push-every", "0.06", "--episodes", "2", "--out", str(out)])
    assert code == 0
    return out


def test_sweep_writes_every_cell_and_a_heatmap(swept):
    report = json.loads((swept / robustness.RESULT_FILE).read_text())
    assert report["task"] == "walk" and report["push"] == [0.0, 2.0]
    cells = {c["push"]: c for c in report["cells"]}
    assert set(cells) == {0.0, 2.0}
    for c in cells.values():
        assert c["friction"] == 0.6 and c["mass_scale"] == 1.0
        assert 0.0 <= c["success_rate"] <= 1.0 and c["episode_length"] > 0
    # Kicks of 2 m/s every 3 steps move the robot: the cells differ.
    assert cells[0.0]["forward_velocity"] != cells[2.0]["forward_velocity"]
    assert (swept / robustness.HEATMAP_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cell_config_fixes_the_cells_values():
    from jaxhum.envs.walk import WalkConfig

    config = robustness.cell_config(WalkConfig(randomization=R.GPU_PRESET), 0.5, 1.1, 0.0, 3.0)
    assert config.randomization == R.RandomizationConfig(
        friction=(0.5, 0.5), mass_scale=(1.1, 1.1), push_interval=(3.0, 3.0), push_velocity=(0.0, 0.0))
    pushed = robustness.cell_config(WalkConfig(), 1.0, 1.0, 0.7, 2.0).randomization
    assert pushed.push_velocity == (0.7, 0.7) and pushed.push_interval == (2.0, 2.0)


@pytest.mark.parametrize(
    "argv, field",
    [
        (["/no/such/run"], "run_dir"),
        (["{run}", "--friction", "a,b"], "friction"),
        (["{run}", "--mass-scale", "0,1"], "mass_scale"),
        (["{run}", "--push", "-1"], "push"),
        (["{run}", "--push-every", "0"], "push_every"),
        (["{run}", "--episodes", "0"], "episodes"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, field, run_dir, capsys):
    code = robustness.main([a.format(run=run_dir) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: {field}: ") and "\n" not in err, err
    assert not (run_dir / "robustness").exists()

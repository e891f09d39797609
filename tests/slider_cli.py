"""`experiments.humanoid_run`'s command line with the slider task of tests/helpers.py registered.

    python tests/slider_cli.py --set env_name=slider ...    # a new run of the slider
    python tests/slider_cli.py --resume RUN_DIR             # resumes it (its config names the slider)

For tests of the runner's own behaviour in real processes (signals, resume): the same command
line, runner and checkpoints as any task, on a task that compiles in seconds.
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repository, as `python -m` from it

import helpers

from experiments import humanoid_run

if __name__ == "__main__":
    with helpers.slider_task():
        sys.exit(humanoid_run.main(sys.argv[1:]))

"""The training-job HTTP service: `python -m jaxhum.jobs`, then POST /reinforcement-learning.

Modules: `store` (the SQLite job table), `tasks` (the experiments it can run and the in-process
check of a job's command line), `manager` (processes, queue, monitor, restart recovery), `app`
(the FastAPI routes) and `__main__` (the command line). Needs the `serve` extra
(`pip install -e '.[serve]'`); nothing here is imported by `import jaxhum`.
"""

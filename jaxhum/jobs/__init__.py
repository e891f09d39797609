"""The training-job HTTP service: `python -m jaxhum.jobs`, then POST /reinforcement-learning.

Modules: `store` (the SQLite job table), `tasks` (the experiments it can run and the in-process
check of a job's command line), `manager` (processes, queue, monitor, restart recovery),
`limits` (the bounds of a request: fixed ones and the operator's `Limits`), `files` (the files
the service opens: inside the data directory, never through a link; the paths a request may
name), `guards` (the ASGI layers before any route: bearer token, body size), `app` (the
FastAPI routes) and `__main__` (the command line). Needs the `serve` extra (`pip install -e
'.[serve]'`); nothing here is imported by `import jaxhum`.
"""

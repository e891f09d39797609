"""Raw control steps per second of one physics backend: jh1 (walk's and joystick's physics, pushes
on) and the classic humanoid (humanoid_run), at several env counts, in this one process.

Backends (`--backend`), one per process, each with the packages it needs:
  mjx-jax      MJX's JAX implementation (`mjx.put_model(impl='jax')`): today's physics; any device.
  mjx-warp     MJX's Warp implementation (`mjx.put_model(impl='warp')`): mujoco-mjx[warp], i.e.
               warp-lang; a CUDA GPU (or Warp's CPU path). The same `mjx.step` under jit/vmap.
  mujoco-warp  MuJoCo Warp (`mujoco_warp`, with warp-lang) called from JAX through Warp's JAX FFI
               (`warp.jax_callable`, as mujoco_warp's contrib/jax_unroll.py does):
               one callable steps every world n_substeps times from qpos, qvel and ctrl. Its pip
               package pins its own mujoco, which may not be mujoco-mjx's (then it needs an
               environment of its own: the record lists every version).
A backend whose package is missing is refused in one line (exit status 2).

What one control step is, for every backend alike: ctrl = the task's home ctrl (jh1: position
targets) plus uniform noise of `--action-noise` of each actuator's half range (the classic
humanoid: uniform over its ctrl range), held for the task's n_substeps physics steps (the task's
model: its solver settings, timestep and contact filtering, as `jaxhum.envs.make` builds it). jh1's
pushes: every env is kicked once per push interval (the joystick's recommended randomization:
interval and speed ranges' means and spans), a horizontal velocity added to its root. No
autoreset: a robot that falls keeps simulating on the floor, the same on every backend. Compile
excluded (a first call), the best of `--repeats` timed calls of `--steps` control steps.

    python benchmarks/physics_backends.py --backend mjx-jax                    # 2048, 8192, 32768 envs
    python benchmarks/physics_backends.py --backend mjx-warp --tasks walk --envs 8192
    python benchmarks/physics_backends.py --backend mjx-jax --envs 4 --steps 10 --out /tmp/p.json   # CPU check
    for b in mjx-jax mjx-warp mujoco-warp; do python benchmarks/physics_backends.py --backend $b; done

Appends one JSON object per measurement to `--out` (default benchmarks/results/physics.json, a
list): backend, versions, task, envs, steps_per_second, control and physics steps, GPU kind,
platform, commit, date.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import inspect
import json
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BACKENDS = {  # backend -> (modules it imports, packages whose versions the record lists)
    "mjx-jax": ((), ("jax", "jaxlib", "mujoco", "mujoco-mjx")),
    "mjx-warp": (("warp",), ("jax", "jaxlib", "mujoco", "mujoco-mjx", "warp-lang")),
    "mujoco-warp": (("warp", "mujoco_warp"), ("jax", "jaxlib", "mujoco", "mujoco-warp", "warp-lang")),
}
INSTALL = {"warp": "warp-lang (pip install 'mujoco-mjx[warp]')", "mujoco_warp": "mujoco-warp (pip install mujoco-warp)"}
TASKS = ("walk", "joystick", "humanoid_run")
PUSHED = ("walk", "joystick")  # jh1's tasks: kicked as the joystick's randomization kicks


def missing_package(backend: str) -> str | None:
    """One line naming the package `backend` needs and cannot import (None: all importable)."""
    for module in BACKENDS[backend][0]:
        try:
            importlib.import_module(module)
        except ImportError as err:
            return f"backend {backend} needs {INSTALL[module]}: {type(err).__name__}: {err}"
    return None


def versions(backend: str) -> dict[str, str | None]:
    out = {}
    for package in BACKENDS[backend][1]:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


# ----------------------------------------------------------------------------- the task's physics


def task_physics(task: str) -> dict:
    """The host model of `task` as the task builds it, its substeps, home ctrl and push settings."""
    import numpy as np

    from jaxhum import envs

    env = envs.make(task)
    mj_model = env.sim.mj_model
    n_substeps = int(round(env.dt / mj_model.opt.timestep))
    lo, hi = mj_model.actuator_ctrlrange[:, 0], mj_model.actuator_ctrlrange[:, 1]
    home_ctrl = np.array(mj_model.key_ctrl[0] if mj_model.nkey else (lo + hi) / 2, dtype=np.float32)
    home_qpos = np.array(mj_model.key_qpos[0] if mj_model.nkey else mj_model.qpos0, dtype=np.float32)
    push = None
    if task in PUSHED:
        from experiments.joystick import GPU_RANDOMIZATION

        push = {"interval_s": tuple(GPU_RANDOMIZATION.push_interval),
                "velocity": tuple(GPU_RANDOMIZATION.push_velocity)}
    return {"mj_model": mj_model, "n_substeps": n_substeps, "dt": env.dt, "home_ctrl": home_ctrl,
            "home_qpos": home_qpos, "lo": lo.astype(np.float32), "hi": hi.astype(np.float32), "push": push,
            "motor": task == "humanoid_run"}


def _ctrl(key, phys: dict, noise: float, num_envs: int):
    """(num_envs, nu) controls: home + noise * half range (motors: uniform over the range)."""
    import jax
    import jax.numpy as jnp

    u = jax.random.uniform(key, (num_envs, phys["lo"].shape[0]), minval=-1.0, maxval=1.0)
    lo, hi = jnp.asarray(phys["lo"]), jnp.asarray(phys["hi"])
    if phys["motor"]:
        return lo + (u + 1.0) * 0.5 * (hi - lo)
    return jnp.clip(jnp.asarray(phys["home_ctrl"]) + noise * u * 0.5 * (hi - lo), lo, hi)


def _kick(key, t, offsets, phys: dict, num_envs: int):
    """(num_envs, 2) root velocity added at control step t: a kick of a uniform speed in the push
    range, in a uniform direction, when t hits the env's turn (every mean push interval)."""
    import jax
    import jax.numpy as jnp

    push = phys["push"]
    if push is None:
        return jnp.zeros((num_envs, 2))
    every = max(1, int(round(sum(push["interval_s"]) / 2 / phys["dt"])))
    key_speed, key_angle = jax.random.split(key)
    speed = jax.random.uniform(key_speed, (num_envs,), minval=push["velocity"][0], maxval=push["velocity"][1])
    angle = jax.random.uniform(key_angle, (num_envs,), maxval=2 * jnp.pi)
    hit = ((t + offsets) % every == 0).astype(jnp.float32)
    return (hit * speed)[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)


# ----------------------------------------------------------------------------- backends


def mjx_rollout(phys: dict, impl: str, num_envs: int, steps: int, noise: float, contacts: int, njmax: int):
    """A jitted `run(key) -> qpos` of `steps` control steps of num_envs envs through `mjx.step`."""
    import jax
    import jax.numpy as jnp
    from mujoco import mjx

    model = mjx.put_model(phys["mj_model"], impl=impl)
    sizes = {"naconmax": num_envs * contacts, "njmax": njmax} if impl == "warp" else {}
    warp_opt = getattr(model.opt, "_impl", None)
    if impl == "warp" and hasattr(warp_opt, "warn_overflow"):
        # Warp prints a line per step that hits the solver's iteration limit (the humanoid's
        # 1-iteration Newton always does): off, the physics is the same.
        model = model.replace(opt=model.opt.replace(_impl=warp_opt.replace(warn_overflow=0)))

    def init(_):
        data = mjx.make_data(phys["mj_model"], impl=impl, **sizes)
        return mjx.forward(model, data.replace(qpos=jnp.asarray(phys["home_qpos"])))

    def control_step(data, ctrl, kick):
        data = data.replace(ctrl=ctrl, qvel=data.qvel.at[:2].add(kick) if phys["push"] else data.qvel)
        data, _ = jax.lax.scan(lambda d, _: (mjx.step(model, d), None), data, None, length=phys["n_substeps"])
        return data

    step_all = jax.vmap(control_step)
    offsets = jnp.arange(num_envs)

    @jax.jit
    def run(key):
        data = jax.vmap(init)(jnp.arange(num_envs))

        def body(carry, t):
            data, key = carry
            key, key_ctrl, key_kick = jax.random.split(key, 3)
            ctrl = _ctrl(key_ctrl, phys, noise, num_envs)
            data = step_all(data, ctrl, _kick(key_kick, t, offsets, phys, num_envs))
            return (data, key), None

        (data, _), _ = jax.lax.scan(body, (data, key), jnp.arange(steps))
        return data.qpos

    return run


def mujoco_warp_rollout(phys: dict, num_envs: int, steps: int, noise: float, contacts: int, njmax: int):
    """The same rollout with MuJoCo Warp stepping every world in one Warp FFI call per control step."""
    import jax
    import jax.numpy as jnp
    import mujoco
    import mujoco_warp as mjw
    import warp as wp

    jax_callable = getattr(wp, "jax_callable", None)  # warp-lang >= 1.10; before: warp.jax_experimental.ffi
    if jax_callable is None:
        from warp.jax_experimental.ffi import jax_callable

    mjm = phys["mj_model"]
    mjd = mujoco.MjData(mjm)
    mjd.qpos[:] = phys["home_qpos"]
    mujoco.mj_forward(mjm, mjd)
    m = mjw.put_model(mjm)
    if hasattr(m.opt, "warn_overflow"):
        m.opt.warn_overflow = 0  # no line per step that hits the iteration limit; the physics is the same
    wanted = {"nworld": num_envs, "nconmax": contacts, "naconmax": num_envs * contacts, "njmax": njmax}
    params = inspect.signature(mjw.put_data).parameters
    d = mjw.put_data(mjm, mjd, **{k: v for k, v in wanted.items() if k in params})
    n_substeps = phys["n_substeps"]
    nq, nv = mjm.nq, mjm.nv

    def warp_step(qpos_in: wp.array(dtype=wp.float32, ndim=2), qvel_in: wp.array(dtype=wp.float32, ndim=2),
                  ctrl_in: wp.array(dtype=wp.float32, ndim=2), qpos_out: wp.array(dtype=wp.float32, ndim=2),
                  qvel_out: wp.array(dtype=wp.float32, ndim=2)):
        wp.copy(d.qpos, qpos_in)
        wp.copy(d.qvel, qvel_in)
        wp.copy(d.ctrl, ctrl_in)
        for _ in range(n_substeps):
            mjw.step(m, d)
        wp.copy(qpos_out, d.qpos)
        wp.copy(qvel_out, d.qvel)

    step_fn = jax_callable(warp_step, num_outputs=2,
                           output_dims={"qpos_out": (num_envs, nq), "qvel_out": (num_envs, nv)})
    offsets = jnp.arange(num_envs)

    @jax.jit
    def run(key):
        qpos = jnp.tile(jnp.asarray(phys["home_qpos"]), (num_envs, 1))
        qvel = jnp.zeros((num_envs, nv), jnp.float32)

        def body(carry, t):
            qpos, qvel, key = carry
            key, key_ctrl, key_kick = jax.random.split(key, 3)
            ctrl = _ctrl(key_ctrl, phys, noise, num_envs).astype(jnp.float32)
            if phys["push"]:
                qvel = qvel.at[:, :2].add(_kick(key_kick, t, offsets, phys, num_envs))
            qpos, qvel = step_fn(qpos, qvel, ctrl)
            return (qpos, qvel, key), None

        (qpos, _, _), _ = jax.lax.scan(body, (qpos, qvel, key), jnp.arange(steps))
        return qpos

    return run


def measure(run, repeats: int) -> tuple[float, float]:
    """(compile and first call seconds, best of `repeats` timed calls)."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(run(jax.random.key(0)))
    first = time.perf_counter() - t0
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(jax.random.key(i + 1)))
        best = min(best, time.perf_counter() - t0)
    return first, best


# ----------------------------------------------------------------------------- command line


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", required=True, choices=sorted(BACKENDS))
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--envs", type=int, nargs="+", default=[2048, 8192, 32768])
    parser.add_argument("--steps", type=int, default=100, help="control steps per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--action-noise", type=float, default=0.25, help="jh1: noise as a share of the half range")
    parser.add_argument("--contacts-per-env", type=int, default=32, help="Warp: contact capacity per world")
    parser.add_argument("--njmax", type=int, default=256, help="Warp: constraint capacity per world")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "benchmarks" / "results" / "physics.json")
    args = parser.parse_args(argv)
    args.tasks = [t for t in args.tasks.split(",") if t]
    for task in args.tasks:
        if task not in TASKS:
            parser.error(f"--tasks: {task!r} is not one of {', '.join(TASKS)}")
    if min(args.envs) <= 0 or args.steps <= 0 or args.repeats <= 0:
        parser.error("--envs, --steps and --repeats: must be positive integers")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = missing_package(args.backend)
    if why is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    import jax

    device = jax.devices()[0]
    common = {"backend": args.backend, "versions": versions(args.backend), "gpu": device.device_kind,
              "platform": device.platform, "commit": _git("rev-parse", "HEAD") or None,
              "uncommitted_changes": bool(_git("status", "--porcelain", "--", "jaxhum")),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    records = []
    for task in args.tasks:
        phys = task_physics(task)
        for num_envs in args.envs:
            if args.backend == "mujoco-warp":
                run = mujoco_warp_rollout(phys, num_envs, args.steps, args.action_noise, args.contacts_per_env,
                                          args.njmax)
            else:
                run = mjx_rollout(phys, args.backend.split("-")[1], num_envs, args.steps, args.action_noise,
                                  args.contacts_per_env, args.njmax)
            first_s, best_s = measure(run, args.repeats)
            rate = num_envs * args.steps / best_s
            records.append({**common, "task": task, "envs": num_envs, "steps_per_second": round(rate, 1),
                            "control_steps": args.steps, "n_substeps": phys["n_substeps"],
                            "pushes": phys["push"] is not None, "first_call_s": round(first_s, 2),
                            "best_s": round(best_s, 4), "repeats": args.repeats})
            append_record(args.out, records[-1])  # each as measured: a killed run keeps what it had
            print(f"{args.backend:12s} {task:13s} {num_envs:6d} envs  {rate:14,.0f} control steps/s  "
                  f"(first call {first_s:.1f} s)", flush=True)
    print(f"wrote {len(records)} records to {args.out}")
    return 0


def append_record(path: pathlib.Path, record: dict) -> None:
    """Appends `record` to the JSON list in `path` (created when absent)."""
    previous = json.loads(path.read_text()) if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([*previous, record], indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())

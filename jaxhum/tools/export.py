"""Export a trained policy for use without JAX: `python -m jaxhum.export RUN_DIR --out DIR [--best]`.

Writes into DIR:
  policy.onnx   the deterministic policy as an ONNX graph (ONNX opset `OPSET`), built with the onnx
                package from the weights: input `obs` (batch, obs_size) float32 -> output `action`
                (batch, action_size) in [-1, 1]. The observation normalizer is folded in as the
                first ops: Sub(mean), Div(std), Clip(-5, 5); then Gemm + activation per layer,
                Slice of the Gaussian mean, Tanh.
  policy.npz    the same numbers for `jaxhum/deploy.py`, a numpy-only runner (copied to DIR too).
  policy.json   what a robot loop needs: observation layout (term names and slices of one frame)
                and observation history (frames, newest first: `deploy.FrameHistory`), the action
                mapping (ctrl = clip(ctrl_offset + ctrl_scale * clip(action, -1, 1), ctrl_min,
                ctrl_max) for the actuators in actuator_order), actuator and
                joint order, control dt and physics substeps, and the robot's own facts (home
                pose, PD gains, ctrl ranges, ... from the task's `DeploySpec.robot`).

A navigate run (a high-level policy commanding a frozen joystick policy, `export_pair`) writes
the pair: policy.onnx / policy.npz are the high-level policy (its action a (3,) in [-1, 1] is a
velocity command, not controls), low_level.onnx / low_level.npz the low-level joystick policy,
and policy.json holds the high level's layout, the command mapping (`command`: a -> (vx, vy,
yaw rate) in the low level's ranges and where the command enters the low level's frame), the
rates (`control_dt`: the low level acts every control step; `high_level_period_steps` and
`high_level_period_s`: the high level every K of them, its command held in between) and a
`low_level` section: what the joystick run's own export writes in its policy.json.
`deploy.PolicyPair` runs the pair with numpy.

Bad input: one line `error: <field>: <constraint>` on stderr, exit 2, nothing written.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxhum.config import FrozenMapping
from jaxhum.envs import navigate
from jaxhum.envs.terms import commands
from jaxhum.run import checkpoint
from jaxhum.run import config as run_config

OPSET = 17
_SWISH, _TANH = "swish", "tanh"


class ExportError(Exception):
    """The run cannot be exported; one line `<field>: <constraint>`."""


def policy_arrays(run: checkpoint.LoadedRun) -> dict[str, np.ndarray]:
    """The policy as named numpy arrays (the policy.npz content; see `jaxhum.tools.deploy`)."""
    spec = run.env.deploy
    return {
        **network_arrays(run),
        "ctrl_offset": np.asarray(spec.ctrl_offset, np.float64),
        "ctrl_scale": np.asarray(spec.ctrl_scale, np.float64),
        "ctrl_min": np.asarray(spec.ctrl_min, np.float64),
        "ctrl_max": np.asarray(spec.ctrl_max, np.float64),
        "actuator_ids": np.asarray(spec.actuator_ids, np.int64),
    }


def network_arrays(run: checkpoint.LoadedRun) -> dict[str, np.ndarray]:
    """The actor network and its normalizer as named arrays: `policy_arrays` without the action
    -> ctrl mapping (what a policy whose action is not controls, navigate's high level, exports)."""
    import jax

    from jaxhum.rl import normalization

    actor = run_config.policy_architecture(run.config)  # PPO's policy or the SAC / TD3 actor
    params = jax.device_get(run.params)
    layers = params.policy["params"]
    names = [f"hidden_{i}" for i in range(len(actor.hidden_sizes))] + ["output"]
    arrays: dict[str, np.ndarray] = {
        "format": np.asarray(1),
        "activation": np.asarray(actor.activation),
        "normalize": np.asarray(int(actor.normalize_observations)),
        "obs_mean": np.asarray(params.normalizer.mean, np.float32),
        "obs_std": np.asarray(params.normalizer.std, np.float32),
        "obs_clip": np.asarray(normalization.CLIP, np.float32),
        "num_layers": np.asarray(len(names)),
        "action_size": np.asarray(run.env.action_size),
    }
    for i, name in enumerate(names):
        arrays[f"w{i}"] = np.asarray(layers[name]["kernel"], np.float32)
        arrays[f"b{i}"] = np.asarray(layers[name]["bias"], np.float32)
    return arrays


def onnx_model(arrays: dict[str, np.ndarray]) -> Any:
    """Builds the ONNX model (opset OPSET) from `policy_arrays`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    x = "obs"
    if int(arrays["normalize"]):
        clip = float(arrays["obs_clip"])
        nodes += [
            helper.make_node("Sub", [x, const("obs_mean", arrays["obs_mean"])], ["obs_centred"]),
            helper.make_node("Div", ["obs_centred", const("obs_std", arrays["obs_std"])], ["obs_scaled"]),
            helper.make_node("Clip", ["obs_scaled", const("clip_lo", np.float32(-clip)),
                                      const("clip_hi", np.float32(clip))], ["obs_normalized"]),
        ]
        x = "obs_normalized"
    count = int(arrays["num_layers"])
    for i in range(count):
        y = f"dense_{i}"
        nodes.append(
            helper.make_node("Gemm", [x, const(f"w{i}", arrays[f"w{i}"]), const(f"b{i}", arrays[f"b{i}"])], [y])
        )
        if i < count - 1:
            if str(arrays["activation"]) == _SWISH:
                nodes += [
                    helper.make_node("Sigmoid", [y], [f"sigmoid_{i}"]),
                    helper.make_node("Mul", [y, f"sigmoid_{i}"], [f"act_{i}"]),
                ]
            else:
                nodes.append(helper.make_node("Tanh", [y], [f"act_{i}"]))
            y = f"act_{i}"
        x = y
    size = int(arrays["action_size"])
    nodes += [
        helper.make_node(
            "Slice",
            [
                x,
                const("loc_start", np.asarray([0], np.int64)),
                const("loc_end", np.asarray([size], np.int64)),
                const("loc_axis", np.asarray([1], np.int64)),
            ],
            ["loc"],
        ),
        helper.make_node("Tanh", ["loc"], ["action"]),
    ]
    obs_size = arrays["w0"].shape[0]
    graph = helper.make_graph(
        nodes,
        "jaxhum_policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", obs_size])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", size])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="jaxhum")
    model.ir_version = 8  # readable by onnxruntime >= 1.14 (IR 9+ needs newer runtimes)
    onnx.checker.check_model(model, full_check=True)
    return model


def policy_json(run: checkpoint.LoadedRun) -> dict[str, Any]:
    """The metadata a robot loop needs (see the module docstring)."""
    env, spec = run.env, run.env.deploy
    mj = env.sim.mj_model
    import mujoco

    ids = [int(i) for i in spec.actuator_ids]
    actuators = [mujoco.mj_id2name(mj, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in ids]
    joints = [mujoco.mj_id2name(mj, mujoco.mjtObj.mjOBJ_JOINT, int(mj.actuator_trnid[i, 0])) for i in ids]
    timestep = float(mj.opt.timestep)
    return {
        **_observation_json(run),
        "action": {
            "mapping": "ctrl[actuator_order] = "
            "clip(ctrl_offset + ctrl_scale * clip(action, -1, 1), ctrl_min, ctrl_max)",
            "ctrl_offset": np.asarray(spec.ctrl_offset).tolist(),
            "ctrl_scale": np.asarray(spec.ctrl_scale).tolist(),
            "ctrl_min": np.asarray(spec.ctrl_min).tolist(),
            "ctrl_max": np.asarray(spec.ctrl_max).tolist(),
        },
        "actuator_order": actuators,
        "joint_order": joints,
        "control_dt": env.dt,
        "physics_dt": timestep,
        "n_substeps": int(round(env.dt / timestep)),
        "robot": dict(spec.robot),
    }


def _observation_json(run: checkpoint.LoadedRun) -> dict[str, Any]:
    """policy.json's head: the run, the sizes, the observation layout and history."""
    env = run.env
    layout, start = [], 0
    for name, size in env.observation_layout:
        layout.append({"name": name, "start": start, "stop": start + size})
        start += size
    return {
        "format": 1,
        "task": run.config.env_name,
        "checkpoint_step": run.step,
        "onnx_opset": OPSET,
        "observation_size": env.observation_size,
        "action_size": env.action_size,
        "observation_layout": layout,
        "observation_history": env.observation_history,
    }


def pair_json(run: checkpoint.LoadedRun, low_run: checkpoint.LoadedRun) -> dict[str, Any]:
    """policy.json of a navigate run: the high level's observation, the command mapping, the
    rates and the low level's own policy.json (see the module docstring)."""
    env, low_env = run.env, low_run.env
    command_low, command_high = (np.asarray(r).tolist() for r in navigate.command_ranges(low_env))
    offset = commands.command_offset(low_env)
    return {
        **_observation_json(run),
        "command": {
            "mapping": "a = clip(action, -1, 1), z = clip(0, low, high); "
            "command = z + a * (high - z) where a >= 0, else z + a * (z - low)",
            "names": ["vx", "vy", "yaw_rate"],
            "low": command_low,
            "high": command_high,
            "low_level_frame_start": offset,
            "low_level_frame_stop": offset + commands.COMMAND_SIZE,
        },
        "control_dt": low_env.dt,
        "high_level_period_steps": env.low_level_steps,
        "high_level_period_s": env.dt,
        "low_level": {**policy_json(low_run), "source": env.low_level.source,
                      "files": {"onnx": "low_level.onnx", "npz": "low_level.npz"}},
    }


def low_level_run(low: navigate.LowLevel) -> checkpoint.LoadedRun:
    """A navigate env's frozen low level as the run `policy_arrays` and `policy_json` read: the
    joystick run it was loaded from (its newest checkpoint, as `navigate.load_low_level` loads
    it), or the untrained actor (`navigate.untrained_low_level`'s architecture, step 0)."""
    if low.source != navigate.UNTRAINED:
        return checkpoint.load_run(low.source)
    from jaxhum.rl.train import PPOConfig

    ppo = PPOConfig(policy_hidden_sizes=navigate.UNTRAINED_HIDDEN_SIZES, activation="swish",
                    normalize_observations=True)
    config = run_config.RunConfig(env_name=navigate.LOW_LEVEL_TASK, ppo=ppo,
                                  env=FrozenMapping({"robot": low.env.config.robot}))
    return checkpoint.LoadedRun(run_dir=pathlib.Path(low.source), config=config, step=0, env=low.env,
                                params=low.params, act=low.act)


def export(run: checkpoint.LoadedRun, out: pathlib.Path) -> dict[str, pathlib.Path]:
    """Writes policy.onnx, policy.npz, deploy.py and policy.json into `out` (created if needed)."""
    _check_deploy(run)
    return _write(out, {"policy": policy_arrays(run)}, policy_json(run))


def export_pair(run: checkpoint.LoadedRun, out: pathlib.Path) -> dict[str, pathlib.Path]:
    """Writes a navigate run's pair into `out`: policy.onnx / .npz (the high level), low_level.onnx
    / .npz (the frozen joystick policy), deploy.py and policy.json (`pair_json`)."""
    low_run = low_level_run(run.env.low_level)
    _check_deploy(low_run)
    return _write(out, {"policy": network_arrays(run), "low_level": policy_arrays(low_run)}, pair_json(run, low_run))


def export_run(run: checkpoint.LoadedRun, out: pathlib.Path) -> dict[str, pathlib.Path]:
    """`export_pair` for a navigate run, else `export`: what `python -m jaxhum.export` writes."""
    return (export_pair if isinstance(run.env, navigate.NavigateEnv) else export)(run, out)


def _check_deploy(run: checkpoint.LoadedRun) -> None:
    if run.env.deploy is None or not run.env.observation_layout:
        raise ExportError(
            f"env_name: task {run.config.env_name!r} does not describe its deployment "
            "(Env.deploy, Env.observation_layout)"
        )


def _write(out: pathlib.Path, policies: dict[str, dict[str, np.ndarray]], meta: dict[str, Any]
           ) -> dict[str, pathlib.Path]:
    """<stem>.onnx and <stem>.npz per policy, policy.json (`meta`) and deploy.py, into `out`."""
    import onnx

    models = {stem: onnx_model(arrays) for stem, arrays in policies.items()}  # checked before writing
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, arrays in policies.items():
        key = "" if stem == "policy" else f"{stem}_"
        paths[f"{key}onnx"], paths[f"{key}npz"] = out / f"{stem}.onnx", out / f"{stem}.npz"
        onnx.save(models[stem], str(paths[f"{key}onnx"]))
        np.savez(paths[f"{key}npz"], **arrays)
    paths["json"] = out / "policy.json"
    paths["json"].write_text(json.dumps(meta, indent=2) + "\n")
    paths["deploy"] = out / "deploy.py"
    shutil.copyfile(pathlib.Path(__file__).with_name("deploy.py"), paths["deploy"])
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    from jaxhum.run.cli import ArgumentParser, UsageError, run_dir_arg
    from jaxhum.tools.memory import use_memory_on_demand

    use_memory_on_demand()  # before any device use: JAX would take 75% of the GPU

    parser = ArgumentParser(
        prog="python -m jaxhum.export", description=__doc__.splitlines()[0], error_prefix="arguments: "
    )
    parser.add_argument("run_dir", type=str)
    parser.add_argument("--out", type=str, required=True)
    parser.add_argument("--best", action="store_true", help="export best_checkpoint/ instead of the newest")
    try:
        args = parser.parse_args(argv)
        run_dir = run_dir_arg(args.run_dir)
        out = pathlib.Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UsageError(f"out: {out} exists and is not an empty directory")
        for module in ("onnx", "onnxruntime"):
            try:
                __import__(module)
            except ImportError:
                raise UsageError(f"out: exporting needs {module}: pip install 'jaxhum[export]'") from None
        run = checkpoint.load_run(run_dir, best=args.best, compile_cache=True)
        paths = export_run(run, out)
    except (UsageError, ExportError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

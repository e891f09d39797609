"""Run an exported policy with numpy alone (for a robot's computer, e.g. a Jetson).

This module imports numpy and nothing else; copy it next to `policy.npz` (both written by
`python -m jaxhum.export`) and use:

    from deploy import Policy            # or: from jaxhum.tools.deploy import Policy
    policy = Policy.load("policy.npz")
    action = policy(obs)                  # obs (obs_size,) or (batch, obs_size) -> action in [-1, 1]
    ctrl = policy.ctrl(action)            # controls of actuators `actuator_ids` (policy.json: actuator_order)

A policy trained with an observation history (policy.json: `observation_history` H > 1) reads the
last H frames (each laid out as `observation_layout`), newest first; keep them with `FrameHistory`:

    history = FrameHistory(policy_json["observation_history"])
    action = policy(history.push(frame))  # frame (frame_size,); at an episode's start history.reset()

The computation is the JAX policy's deterministic action, in float32:
    z = clip((obs - obs_mean) / obs_std, -obs_clip, obs_clip)    (skipped if normalize is 0)
    h = act(z W_0 + b_0), ..., out = h W_n + b_n,  action = tanh(out[..., :action_size])
with act = swish (x * sigmoid(x)) or tanh.

An export of navigate holds two policies (policy.json: `low_level`): a high-level one whose action
is a velocity command, every `high_level_period_steps` control steps, and the joystick policy it
commands, every control step. `PolicyPair` runs them:

    pair = PolicyPair.load("export_dir")
    action = pair(high_obs, low_frame)    # once per control step; ctrl = pair.low.ctrl(action)
    # at an episode's start: pair.reset()
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

FORMAT = 1


def _swish(x: np.ndarray) -> np.ndarray:
    # x * sigmoid(x), written with exp(-|x|) so large |x| never overflows.
    e = np.exp(-np.abs(x))
    sigmoid = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return x * sigmoid


_ACTIVATIONS = {"swish": _swish, "tanh": np.tanh}


class Policy:
    """A deterministic MLP policy with its observation normalizer, from an exported .npz."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        if int(arrays["format"]) != FORMAT:
            raise ValueError(f"format: this runner reads format {FORMAT}, the file has {int(arrays['format'])}")
        self.activation = str(arrays["activation"])
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation: must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        self.normalize = bool(arrays["normalize"])
        self.obs_mean = np.asarray(arrays["obs_mean"], np.float32)
        self.obs_std = np.asarray(arrays["obs_std"], np.float32)
        self.obs_clip = np.float32(arrays["obs_clip"])
        count = int(arrays["num_layers"])
        self.weights = [np.asarray(arrays[f"w{i}"], np.float32) for i in range(count)]
        self.biases = [np.asarray(arrays[f"b{i}"], np.float32) for i in range(count)]
        self.action_size = int(arrays["action_size"])
        # The action -> ctrl mapping; None for a policy whose action is not controls (a high level's).
        self.ctrl_offset, self.ctrl_scale, self.ctrl_min, self.ctrl_max = (
            np.asarray(arrays[k], np.float64) if k in arrays else None
            for k in ("ctrl_offset", "ctrl_scale", "ctrl_min", "ctrl_max"))
        self.actuator_ids = np.asarray(arrays["actuator_ids"], np.int64) if "actuator_ids" in arrays else None
        self.obs_size = self.weights[0].shape[0]

    @classmethod
    def load(cls, path: str) -> Policy:
        """Reads a policy.npz written by jaxhum.export."""
        with np.load(path, allow_pickle=False) as f:
            return cls({k: f[k] for k in f.files})

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """obs (..., obs_size) -> deterministic action (..., action_size) in [-1, 1], float32."""
        x = np.asarray(obs, np.float32)
        if x.shape[-1] != self.obs_size:
            raise ValueError(f"obs: last dimension must be {self.obs_size}, got shape {x.shape}")
        if self.normalize:
            x = np.clip((x - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)
        act = _ACTIVATIONS[self.activation]
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            x = act(x @ w + b)
        out = x @ self.weights[-1] + self.biases[-1]
        return np.tanh(out[..., : self.action_size])

    def ctrl(self, action: np.ndarray) -> np.ndarray:
        """Controls (action_size,) for actuators `actuator_ids`:
        clip(ctrl_offset + ctrl_scale * clip(action, -1, 1), ctrl_min, ctrl_max)."""
        if self.ctrl_offset is None:
            raise ValueError("ctrl: this policy's action is not controls (a high-level policy's command)")
        ctrl = self.ctrl_offset + self.ctrl_scale * np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        return np.clip(ctrl, self.ctrl_min, self.ctrl_max)


class FrameHistory:
    """The last H observation frames, newest first, as a policy trained with
    `observation_history` H reads them; before H frames arrived the first one fills the rest."""

    def __init__(self, history: int):
        if int(history) < 1:
            raise ValueError(f"history: must be >= 1, got {history}")
        self.history = int(history)
        self.frames: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the frames (a new episode starts)."""
        self.frames = None

    def push(self, frame: np.ndarray) -> np.ndarray:
        """(H * frame_size,) float32: `frame` (frame_size,), then the H - 1 before it."""
        frame = np.asarray(frame, np.float32).reshape(-1)
        if self.frames is None:
            self.frames = np.broadcast_to(frame, (self.history, frame.shape[0])).copy()
        else:
            self.frames = np.concatenate([frame[None], self.frames[:-1]])
        return self.frames.reshape(-1)


class PolicyPair:
    """A navigate export: a high-level policy commanding a low-level (joystick) policy.

    Called once per control step: every `period` calls (the first call of an episode included)
    the high-level policy maps `high_obs` to a command (vx, vy, yaw rate), held in between; every
    call the low-level policy acts on `low_frame` with that command written into its command
    entries (policy.json: `command`), through its observation history. This is the navigate
    step's arithmetic: K = period low-level steps under one held command.
    """

    def __init__(self, high: Policy, low: Policy, meta: dict):
        command = meta["command"]
        self.high, self.low = high, low
        self.period = int(meta["high_level_period_steps"])
        self.command_low = np.asarray(command["low"], np.float32)
        self.command_high = np.asarray(command["high"], np.float32)
        self.command_slice = slice(int(command["low_level_frame_start"]), int(command["low_level_frame_stop"]))
        self.history = FrameHistory(meta["low_level"]["observation_history"])
        self.reset()

    @classmethod
    def load(cls, directory: str | pathlib.Path) -> PolicyPair:
        """Reads policy.json, policy.npz and low_level.npz from an export of navigate."""
        directory = pathlib.Path(directory)
        meta = json.loads((directory / "policy.json").read_text())
        if "low_level" not in meta:
            raise ValueError(f"low_level: {directory / 'policy.json'} has no low_level section (not a policy pair)")
        low_path = directory / meta["low_level"]["files"]["npz"]
        if not low_path.is_file():
            raise ValueError(f"low_level: {low_path} is missing (export the navigate run again)")
        return cls(Policy.load(str(directory / "policy.npz")), Policy.load(str(low_path)), meta)

    def reset(self) -> None:
        """A new episode: the next call runs the high level; the command stands still until then."""
        self.steps = 0
        self.history.reset()
        self.command = self.command_from_action(np.zeros(3, np.float32))

    @property
    def due(self) -> bool:
        """Whether the next call runs the high-level policy (and reads `high_obs`)."""
        return self.steps % self.period == 0

    def command_from_action(self, action: np.ndarray) -> np.ndarray:
        """(3,) float32 the command for a high-level action (3,): a = clip(action, -1, 1),
        z = clip(0, low, high); z + a (high - z) where a >= 0, else z + a (z - low)."""
        a = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        zero = np.clip(np.float32(0.0), self.command_low, self.command_high)
        return np.where(a >= 0.0, zero + a * (self.command_high - zero), zero + a * (zero - self.command_low))

    def __call__(self, high_obs: np.ndarray | None, low_frame: np.ndarray) -> np.ndarray:
        """One control step: the low-level action (low action_size,) in [-1, 1], float32.

        Args:
          high_obs: the high-level observation (policy.json: observation_layout; its
            `commanded_velocity` is `self.command`, the command followed until now); read only
            when `due`, may be None otherwise.
          low_frame: one frame of the low-level observation (policy.json: low_level
            observation_layout) at this step; its command entries are overwritten.
        """
        if self.due:
            if high_obs is None:
                raise ValueError("high_obs: required on a high-level step (PolicyPair.due)")
            self.command = self.command_from_action(self.high(high_obs))
        frame = np.array(low_frame, np.float32).reshape(-1)
        frame[self.command_slice] = self.command
        self.steps += 1
        return self.low(self.history.push(frame))

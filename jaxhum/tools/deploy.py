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
"""

from __future__ import annotations

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
        self.ctrl_offset = np.asarray(arrays["ctrl_offset"], np.float64)
        self.ctrl_scale = np.asarray(arrays["ctrl_scale"], np.float64)
        self.ctrl_min = np.asarray(arrays["ctrl_min"], np.float64)
        self.ctrl_max = np.asarray(arrays["ctrl_max"], np.float64)
        self.actuator_ids = np.asarray(arrays["actuator_ids"], np.int64)
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

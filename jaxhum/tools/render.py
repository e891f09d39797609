"""Offline video of an episode with `mujoco.Renderer` (EGL or OSMesa), written as MP4.

The episode is simulated in MJX (`jaxhum.tools.episode_stats.make_recorder`); each control step's qpos is
copied into a host `MjData`, `mj_forward` fills the kinematics and the frame is rendered with a
camera that tracks the robot's root body. Frames are at the control rate (fps = 1 / env.dt).

OpenGL: `MUJOCO_GL` chooses the backend ('egl' or 'osmesa'); unset, EGL is used when libEGL is
installed, else OSMesa. With neither installed, `check_gl` raises a one-line `RenderError` that
says what to install. MP4 encoding uses imageio with imageio-ffmpeg's bundled ffmpeg (the
`render` extra): nothing is downloaded.
"""

from __future__ import annotations

import ctypes.util
import os
import pathlib
import warnings
from typing import Any

import numpy as np

INSTALL_HINT = "install EGL or OSMesa, e.g. `apt-get install libegl1 libosmesa6` (Debian/Ubuntu)"
_LIBRARIES = {"egl": "EGL", "osmesa": "OSMesa"}


class RenderError(RuntimeError):
    """Rendering cannot run here; the message is one line `<field>: <what to do>`."""


def gl_backend() -> str:
    """The offscreen OpenGL backend to use: MUJOCO_GL if set, else 'egl' if available, else 'osmesa'."""
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if chosen:
        if chosen not in _LIBRARIES:
            raise RenderError(f"MUJOCO_GL: must be one of {sorted(_LIBRARIES)} for offscreen video, got {chosen!r}")
        return chosen
    return "egl" if ctypes.util.find_library("EGL") else "osmesa"


def check_gl() -> str:
    """Returns the backend after checking its library is installed (RenderError otherwise)."""
    backend = gl_backend()
    if not ctypes.util.find_library(_LIBRARIES[backend]):
        raise RenderError(
            f"video: no {_LIBRARIES[backend]} library for offscreen rendering (MUJOCO_GL={backend}); {INSTALL_HINT}"
        )
    return backend


def check_video_path(path: pathlib.Path) -> None:
    """Refuses a path that is not a .mp4 in an existing directory, and a missing encoder."""
    if path.suffix.lower() != ".mp4":
        raise RenderError(f"video: must be a .mp4 file, got {path}")
    if not path.parent.absolute().is_dir():
        raise RenderError(f"video: directory {path.parent} does not exist")
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise RenderError("video: needs imageio and imageio-ffmpeg: pip install 'jaxhum[render]'") from None


def _gl_context_class(backend: str) -> Any:
    if backend == "egl":
        from mujoco.egl import GLContext
    else:
        from mujoco.osmesa import GLContext
    return GLContext


def make_renderer(model: Any, height: int, width: int) -> Any:
    """A `mujoco.Renderer` on the chosen offscreen backend.

    mujoco picks its GL context class once, from MUJOCO_GL at its import (which jaxhum does
    before any user code can set it), so the class is chosen here and handed to that module.
    """
    import mujoco
    from mujoco.rendering.classic import gl_context

    gl_context.GLContext = _gl_context_class(check_gl())
    return mujoco.Renderer(model, height=height, width=width)


def tracking_camera(model: Any) -> Any:
    """A camera that follows the root body (the body of the first joint) from the side."""
    import mujoco

    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = int(model.jnt_bodyid[0]) if model.njnt else 0
    camera.distance = 4.0
    camera.azimuth = 90.0  # looking along -y at a robot moving in +x
    camera.elevation = -15.0
    camera.lookat[:] = 0.0
    return camera


def render_frames(model: Any, qpos: np.ndarray, height: int = 240, width: int = 320) -> np.ndarray:
    """Renders configurations qpos (T, nq) into frames (T, height, width, 3) uint8."""
    import mujoco

    qpos = np.asarray(qpos, np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != model.nq:
        raise ValueError(f"qpos: must have shape (T, {model.nq}), got {qpos.shape}")
    data = mujoco.MjData(model)
    camera = tracking_camera(model)
    renderer = make_renderer(model, height, width)
    frames = np.empty((len(qpos), height, width, 3), np.uint8)
    try:
        for t, q in enumerate(qpos):
            data.qpos[:] = q
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=camera)
            frames[t] = renderer.render()
    finally:
        renderer.close()  # free the GL context now, not in a destructor at interpreter exit
    return frames


def write_video(
    model: Any, qpos: np.ndarray, path: str | os.PathLike, fps: float, height: int = 240, width: int = 320
) -> None:
    """Renders qpos (T, nq) and writes an H.264 MP4 at `fps` frames per second."""
    import imageio.v2 as imageio

    frames = render_frames(model, qpos, height, width)
    with warnings.catch_warnings():
        # imageio-ffmpeg starts ffmpeg with subprocess (fork + exec at once), which is safe
        # beside JAX's threads; JAX's generic os.fork warning would only alarm the user.
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        imageio.mimwrite(str(path), list(frames), fps=fps, codec="libx264", macro_block_size=1)


def record_episode(run: Any, seed: int) -> np.ndarray:
    """qpos (T + 1, nq) of one deterministic episode of a loaded run, cut where it ended."""
    import jax

    from jaxhum.tools import episode_stats

    record = jax.jit(episode_stats.make_recorder(run.env, run.act))
    qpos, ended = jax.device_get(record(run.params, jax.random.key(seed)))
    return episode_stats.episode_frames(qpos, ended)

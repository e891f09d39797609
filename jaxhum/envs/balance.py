"""balance: our humanoid robot (jh1) stands still under pushes (joystick with the command zero).

The task is joystick's (`jaxhum.envs.terms.locomotion.TASK`) with other defaults: the command is
fixed at (0, 0, 0) (zero ranges, every draw zero), and the pelvis is kicked every 5-10 s with
0.1-1.0 m/s (`randomization.GPU_PRESET`'s push settings). The observation, action, critic
observation and reward terms are joystick's, so a joystick policy fine-tunes into balance
(`init_from=RUN_DIR`) with every shape matching; with the command zero, joystick's reward pays for
standing: `stand_still` and `pose` hold the home pose, `feet_air_time` pays nothing,
`feet_phase` asks the feet to stay down, the tracking terms ask for zero velocity. Pushes show in the step metrics
as `push_magnitude`, in evaluation as `eval/max_push_survived` beside `eval/fall_rate`.
"""

from __future__ import annotations

import dataclasses

from jaxhum.envs import robot_task
from jaxhum.envs.terms import locomotion, randomization

ZERO: tuple[float, float] = (0.0, 0.0)
PUSHES = randomization.RandomizationConfig(
    push_interval=randomization.GPU_PRESET.push_interval,
    push_velocity=randomization.GPU_PRESET.push_velocity,
)


@dataclasses.dataclass(frozen=True)
class BalanceConfig(locomotion.JoystickConfig):
    """joystick's settings (see `JoystickConfig`) with balance's defaults: the command ranges are
    zero and must stay zero, every draw is the zero command, pushes are on (`PUSHES`)."""

    vx_range: tuple[float, float] = ZERO
    vy_range: tuple[float, float] = ZERO
    yaw_rate_range: tuple[float, float] = ZERO
    zero_command_share: float = 1.0
    randomization: randomization.RandomizationConfig = dataclasses.field(default_factory=lambda: PUSHES)

    def validate(self) -> None:
        """joystick's checks, then: the command ranges are (0, 0) (balance stands still)."""
        super().validate()
        for name in ("vx_range", "vy_range", "yaw_rate_range"):
            if tuple(getattr(self, name)) != ZERO:
                raise ValueError(f"{name}: balance commands zero, must be (0, 0), got {tuple(getattr(self, name))} "
                                 "(use the joystick task for commands)")


def make(config: BalanceConfig) -> locomotion.JoystickEnv:
    """Builds balance from a validated config (`jaxhum.envs.make('balance', ...)` builds by name)."""
    if not isinstance(config, BalanceConfig):
        raise ValueError(f"config: expected a BalanceConfig, got {type(config).__name__}")
    return robot_task.build(config, locomotion.TASK, name="balance")

"""The pieces robot tasks are built from: one small pure function per reward term
(`rewards`) and observation term (`observations`); per-episode domain randomization with
observation noise, sensor lag, action latency and pushes (`randomization`); velocity commands,
drawn, resampled, followed and tracked (`commands`); and the velocity-command locomotion task
that joystick and balance share (`locomotion`: its tables, config and `robot_task.TaskDef`)."""

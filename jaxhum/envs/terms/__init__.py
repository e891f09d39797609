"""The terms robot tasks are built from: one small pure function per reward term
(`rewards`) and observation term (`observations`), and per-episode domain randomization with
observation noise, sensor lag, action latency and pushes (`randomization`)."""

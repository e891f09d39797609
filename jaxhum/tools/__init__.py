"""What happens to a trained run: `evaluate` (report, video through `render`; the per-episode
statistics are `episode_stats`), `plot` (learning curves), `export` (ONNX and numpy), `deploy` (runs
an exported policy with numpy alone), `sim2sim` (the exported policy in native MuJoCo beside
MJX) and `robustness` (a grid of friction, mass and kicks).

Each command keeps its short name: `python -m jaxhum.evaluate` runs `jaxhum.tools.evaluate`.
"""

"""What a run is and how it runs: its config and validation (`config`), the host training loop
(`loop`), Orbax checkpoints and loading a saved run (`checkpoint`), fine-tuning from another run
(`finetune`), metrics and progress logs (`log`), the persistent compilation cache
(`compile_cache`), and the command lines (`main` for experiments,
`cli` the one-line-error argument parser every command shares).

Loading a run (`checkpoint.load_run`, `checkpoint.load_policy`) imports `config`, never `loop`.
"""

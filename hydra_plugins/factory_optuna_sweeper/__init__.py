"""factory's Hydra Optuna sweeper: ``override /hydra/sweeper: optuna`` (optuna >= 4).

A drop-in for hydra-optuna-sweeper's config schema; see ``config.py`` for the fields.
"""

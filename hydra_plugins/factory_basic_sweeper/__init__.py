"""factory's default multirun sweeper: Hydra's basic sweeper that finishes every job.

``hydra/sweeper: factory`` (set in conf/config.yaml): see ``basic_sweeper.py``.
"""

"""factory: config-composed ML experiments on OHLCV futures bars.

Data flows conf/ -> run.py -> factory stages (data, features, labeling, splits, dataset,
adapters, models, training, evaluation, tracking) -> outputs/. See docs/architecture.md.
"""

__version__ = "0.1.0"

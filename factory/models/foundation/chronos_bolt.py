"""Chronos-Bolt (Amazon, ``chronos-forecasting``) as a zero-shot barrier classifier.

Chronos-Bolt is a T5 encoder-decoder that reads patches of a mean/std-standardised series
and emits, in one forward pass, quantiles (0.1 .. 0.9 for the released models) of each of
the next ``prediction_length`` values (64 for the released models; longer horizons are
rolled out autoregressively by the pipeline, with a warning). Loaded with
``ChronosBoltPipeline.from_pretrained`` from a directory holding ``config.json`` and
``model.safetensors`` (transformers reads safetensors; no pickle).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from factory.errors import FactoryError
from factory.models.foundation.zero_shot import ZeroShotForecaster

DEFAULT_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class ChronosBoltModel(ZeroShotForecaster):
    """Chronos-Bolt forecaster (``conf/model/chronos_bolt.yaml``); see :class:`ZeroShotForecaster`
    for the parameters."""

    weight_files = ("config.json", "model.safetensors")

    def __init__(
        self,
        weights: str = "amazon/chronos-bolt-tiny",
        quantile_levels: list[float] = DEFAULT_LEVELS,
        batch_size: int = 256,
        device: str = "auto",
        n_paths: int = 512,
        monitoring: str = "continuous",
        vertical: str = "zero",
        proba_floor: float = 0.001,
        random_state: int = 42,
    ) -> None:
        self.weights = weights
        self.quantile_levels = quantile_levels
        self.batch_size = batch_size
        self.device = device
        self.n_paths = n_paths
        self.monitoring = monitoring
        self.vertical = vertical
        self.proba_floor = proba_floor
        self.random_state = random_state

    def _load_backbone(self, directory: Path, device: str):
        import torch
        from chronos import ChronosBoltPipeline

        config = json.loads((directory / "config.json").read_text())
        kind = config.get("chronos_pipeline_class")
        if kind != "ChronosBoltPipeline":
            raise FactoryError(f"model.weights={self.weights}: a {kind or 'non-Chronos'} "
                               f"checkpoint, not Chronos-Bolt: use an amazon/chronos-bolt-* "
                               f"model (e.g. amazon/chronos-bolt-small)")
        # float64: a live bar (a batch of one) and a backtest batch then agree to ~1e-15
        pipeline = ChronosBoltPipeline.from_pretrained(str(directory), dtype=torch.float64,
                                                       local_files_only=True)
        pipeline.model.to(device).eval()
        return pipeline

    def _native_levels(self) -> list[float]:
        return list(self.backbone_.quantiles)

    def _forecast(self, context: np.ndarray, horizon: int) -> np.ndarray:
        import torch

        quantiles = self.backbone_.predict(torch.as_tensor(context, dtype=torch.float64),
                                           prediction_length=horizon)  # (B, Q, H) on CPU
        return quantiles.double().numpy().transpose(0, 2, 1)

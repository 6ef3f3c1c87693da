"""Zero-shot forecasters as classifiers: quantile forecasts -> barrier-geometry probabilities.

A pretrained time-series model forecasts the next ``horizon`` closes of each row's context
window (:mod:`factory.adapters.context`) as quantiles; :mod:`.geometry` turns them into the
probabilities of the three triple-barrier outcomes, an expected return and a confidence.

Honest zero shot: ``fit`` trains nothing and reads no label. It loads the weights and
records the horizon; the probabilities come from the forecast and the barrier geometry
alone. (A calibration fitted on labels would make this a trained model: that belongs to a
stacking/ensemble layer over validation predictions, not here.)

Weights (``model.weights``): a local directory, or a Hugging Face hub id tried offline-first
(the local hub cache, then a download unless ``HF_HUB_OFFLINE`` is set). Only safetensors
files are loaded, never pickles. They are *not* copied into the run directory (large,
read-only inputs): ``save_native`` writes ``weights.json`` with the weights' location and
SHA-256 per file, and ``load_native`` re-opens them and refuses different bytes.

The context is divided by the last close before forecasting: both backbones standardise
their input per series (scale invariant), so this changes nothing but float precision, and
forecast quantiles of ``close_{t+k} / close_t`` become log-return quantiles by ``log``
(monotone, so quantiles map exactly).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from factory.adapters.base import batches
from factory.errors import FactoryError
from factory.models.base import PredictionOutput, WindowClassifier
from factory.models.foundation import geometry

WEIGHTS_JSON = "weights.json"
_MIN_RATIO = 1e-6  # forecast prices at or below zero are floored before the log


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return flag in ("1", "true", "yes", "on") or bool(constants.HF_HUB_OFFLINE)


def resolve_weights(weights: str, files: tuple[str, ...]) -> Path:
    """The local directory holding ``files`` for ``weights`` (a directory or a hub id)."""
    path = Path(str(weights)).expanduser()
    if not path.is_dir():
        from huggingface_hub import snapshot_download

        path = None
        for local_only in (True, False):  # offline first: the hub cache, then the network
            if not local_only and _offline():
                break
            try:
                path = Path(snapshot_download(repo_id=str(weights), allow_patterns=list(files),
                                              local_files_only=local_only))
                break
            except Exception:  # noqa: BLE001 - any failure means "not available here"
                continue
        if path is None:
            raise FactoryError(
                f"model.weights={weights}: not a local directory and could not be downloaded "
                f"(no network?): download it on a machine with internet (`huggingface-cli "
                f"download {weights} --local-dir <dir>`) and set model.weights=<dir>")
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise FactoryError(f"model.weights={weights}: {path} lacks {missing} (only safetensors "
                           f"weights are loaded, never pickles): point model.weights at a "
                           f"directory with {list(files)}")
    return path


def file_hashes(directory: Path, files: tuple[str, ...]) -> dict[str, str]:
    """SHA-256 of each weights file (streamed: checkpoints can be gigabytes)."""
    out = {}
    for name in files:
        digest = hashlib.sha256()
        with open(directory / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        out[name] = digest.hexdigest()
    return out


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FactoryError(f"model.device={device}: no CUDA device here; use model.device=auto")
    return device


class ZeroShotForecaster(WindowClassifier):
    """Base of the zero-shot foundation models (subclasses load and run one backbone).

    Common parameters: ``weights`` (directory or hub id), ``quantile_levels`` (a subset of
    the backbone's trained levels), ``batch_size`` and ``device`` (inference),
    ``n_paths``/``monitoring``/``vertical`` (:func:`geometry.barrier_probabilities`),
    ``proba_floor`` (probabilities are mixed with the uniform one at this weight so that no
    class is ever exactly 0: a sharp forecast must not cost an infinite log loss) and
    ``random_state`` (seeds the geometry's Monte-Carlo paths).
    """

    family = "foundation"
    input_kind = "context"
    weight_files: ClassVar[tuple[str, ...]] = ("model.safetensors",)

    # subclass hooks --------------------------------------------------------------------
    def _load_backbone(self, directory: Path, device: str):  # pragma: no cover - interface
        """Build the pretrained backbone from ``directory`` on ``device``."""
        raise NotImplementedError

    def _native_levels(self) -> list[float]:  # pragma: no cover - interface
        """Quantile levels the loaded backbone forecasts, in its output order."""
        raise NotImplementedError

    def _forecast(self, context: np.ndarray, horizon: int) -> np.ndarray:  # pragma: no cover
        """(B, L) closes / last close (NaN = missing) -> (B, horizon, Q_native) quantiles."""
        raise NotImplementedError

    # the contract --------------------------------------------------------------------
    def _ensure_backbone(self, expected: dict | None = None, record: Path | None = None) -> None:
        """Resolve, hash and load the weights once; with ``expected`` hashes (a saved
        model's), refuse different bytes before loading anything."""
        if getattr(self, "backbone_", None) is not None:
            return
        directory = resolve_weights(self.weights, self.weight_files)
        self.weights_sha256_ = file_hashes(directory, self.weight_files)
        if expected is not None and self.weights_sha256_ != expected:
            raise FactoryError(
                f"model.weights={self.weights}: SHA-256 differs from the one recorded in "
                f"{record} (the weights changed since this model was saved): restore the "
                f"original weights or rerun the experiment")
        self.device_ = resolve_device(str(self.device))
        self.backbone_ = self._load_backbone(directory, self.device_)
        native = [round(float(v), 6) for v in self._native_levels()]
        wanted = [round(float(v), 6) for v in self.quantile_levels]
        if not set(wanted) <= set(native):
            self.backbone_ = None
            raise FactoryError(f"model.quantile_levels={wanted} must be a subset of the levels "
                               f"{native} that {self.weights} forecasts")
        self.level_index_ = np.array([native.index(v) for v in wanted], np.int64)

    def fit(self, X, y=None, sample_weight=None, eval_set=None) -> ZeroShotForecaster:
        """Load the weights and record the horizon of the context input ``X``; nothing is
        trained, so labels, weights and ``eval_set`` are not read (see module doc)."""
        checks = {"batch_size": (int(self.batch_size) >= 1, "an int >= 1"),
                  "n_paths": (int(self.n_paths) >= 2, "an int >= 2"),
                  "proba_floor": (0.0 <= float(self.proba_floor) < 1.0, "in [0, 1)"),
                  "monitoring": (self.monitoring in geometry.MONITORING,
                                 f"one of {geometry.MONITORING}"),
                  "vertical": (self.vertical in geometry.VERTICAL, f"one of {geometry.VERTICAL}")}
        for key, (ok, allowed) in checks.items():
            if not ok:
                raise FactoryError(f"model.{key} must be {allowed}, got {getattr(self, key)!r}")
        geometry.normal_scores(self.quantile_levels)
        self._ensure_backbone()
        self._set_classes()
        self.horizon_ = int(X.horizon)
        return self

    def forecast_quantiles(self, x, positions: np.ndarray) -> np.ndarray:
        """(B, H, Q) quantiles of the log return ``log(close_{t+k} / close_t)``, k = 1..H."""
        import torch

        if getattr(self, "backbone_", None) is None:
            raise FactoryError(f"{type(self).__name__} is not fitted: call fit() first")
        context = x.batch(positions)
        context = context / context[:, -1:]
        with torch.inference_mode():
            ratio = np.asarray(self._forecast(context, int(x.horizon)), np.float64)
        ratio = ratio[..., self.level_index_]
        if not np.isfinite(ratio).all():
            raise FactoryError(f"{type(self).__name__}: non-finite forecasts for "
                               f"{int((~np.isfinite(ratio)).any(axis=(1, 2)).sum())} rows")
        return np.log(np.maximum(ratio, _MIN_RATIO))

    def predict_output(self, x) -> PredictionOutput:
        """Probabilities, expected horizon return and confidence, batch by batch."""
        n = len(x)
        proba, expected, conf = np.empty((n, 3)), np.empty(n), np.empty(n)
        levels = np.asarray(self.quantile_levels, np.float64)
        floor = float(self.proba_floor)
        for pos in batches(x, int(self.batch_size)):
            q = self.forecast_quantiles(x, pos)
            p = geometry.barrier_probabilities(
                q, levels, x.barrier_up[pos], x.barrier_dn[pos], x.cost[pos],
                vertical=self.vertical, monitoring=self.monitoring, n_paths=int(self.n_paths),
                seed=int(self.random_state))
            proba[pos] = (1.0 - floor) * p + floor / 3.0
            expected[pos] = geometry.expected_return(q, levels)
            conf[pos] = geometry.confidence(proba[pos])
        return PredictionOutput(proba, expected, conf)

    def predict_proba(self, x) -> np.ndarray:
        return self.predict_output(x).proba

    def native_state(self) -> dict:
        return {"horizon": self.horizon_}

    def save_native(self, path: Path) -> list[str]:
        """Record where the weights are and their hashes (the weights are not copied)."""
        record = {"weights": str(self.weights), "sha256": self.weights_sha256_}
        (Path(path) / WEIGHTS_JSON).write_text(json.dumps(record, indent=2))
        return [WEIGHTS_JSON]

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> ZeroShotForecaster:
        """Re-open the recorded weights; refuse them if their bytes changed."""
        record = Path(path) / WEIGHTS_JSON
        model = cls(**params)
        model._ensure_backbone(json.loads(record.read_text())["sha256"], record)
        model._set_classes()
        model.horizon_ = int(state["horizon"])
        return model

"""TorchClassifier: any ``nn.Module`` network as a factory model, trained by the one trainer.

The network is a ``_partial_`` constructor from the model YAML; it is built in ``fit`` once
the adapter has fixed the input shape (``network(input_shape=..., n_classes=3)``). Training is
delegated to the injected trainer (``conf/trainer``: epochs, early stopping, device): no model
owns a loop. The input kind (sequence or multires) is the network class's ``input_kind``.

Calling convention: a :class:`~factory.models.base.WindowClassifier`. It differs from the
tabular scikit-learn classifiers in two ways: ``X`` is an adapter's lazy window input (not an
array), and ``classes_`` is always the full class vocabulary (one head output per class).

Artifacts: ``network.pt`` (a ``state_dict`` read back with ``torch.load(weights_only=True)``)
and ``network.json`` (input shape and per-epoch history); the manifest's params hold the
network's config as a Hydra node (``_target_`` + kwargs), rebuilt only for ``factory`` or
trusted classes (:func:`factory.models.artifacts.load_model`).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import numpy as np
import torch

from factory.adapters.base import batches, gather
from factory.errors import FactoryError
from factory.models.base import WindowClassifier

WEIGHTS, META = "network.pt", "network.json"


def _network_class(network) -> type:
    return network.func if isinstance(network, functools.partial) else network


class TorchClassifier(WindowClassifier):
    """A torch network under the shared trainer (``conf/model/<net>.yaml``).

    Parameters
    ----------
    network: ``_partial_`` nn.Module class taking ``input_shape`` and ``n_classes``.
    batch_size, lr, weight_decay: optimisation (AdamW) settings.
    trainer: the :class:`~factory.training.torch_trainer.TorchTrainer` (``${trainer}``; it
        holds ``max_epochs``, which each model YAML sets as ``trainer.max_epochs``).
    random_state: seeds weight init, dropout and batch order.
    """

    family = "neural"
    scaling = "standard"

    def __init__(self, network=None, batch_size: int = 256, lr: float = 1e-3,
                 weight_decay: float = 1e-4, trainer=None, random_state: int = 0) -> None:
        self.network = network
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.trainer = trainer
        self.random_state = random_state

    @property
    def input_kind(self) -> str:
        return getattr(_network_class(self.network), "input_kind", "sequence")

    def _build(self, input_shape: tuple[int, ...]) -> torch.nn.Module:
        if self.network is None:
            raise FactoryError("`model.network` is missing: name an nn.Module with _partial_")
        torch.manual_seed(self.random_state)
        return self.network(input_shape=tuple(int(s) for s in input_shape), n_classes=3)

    def fit(self, X, y=None, sample_weight=None, eval_set=None) -> TorchClassifier:
        """Train on the window input ``X`` (labels / weights: ``y`` / ``sample_weight`` or the
        input's own); early stopping on ``eval_set`` (required: ``[(X_val, y_val[, w])]``)."""
        if self.trainer is None:
            raise FactoryError("`model.trainer` is missing: set `trainer: ${trainer}` in the "
                               "model YAML")
        train = self.with_targets(X, y, sample_weight)
        val = self.unpack_eval_set(eval_set)
        if val is None or len(val) == 0:
            raise FactoryError("torch models early-stop on validation rows; none were given")
        self._set_classes()
        self.input_shape_ = tuple(int(s) for s in train.sample_shape)
        self.module_ = self._build(self.input_shape_)
        self.history_ = self.trainer.fit(
            self.module_, train, val, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, seed=self.random_state)
        self.module_.to("cpu").eval()
        return self

    def _inference_module(self) -> torch.nn.Module:
        """A float64 copy of the trained network, for prediction: a batch of one window (a
        live bar) and a batch of 2,048 (a backtest) then agree to ~1e-15, where float32's
        batch-size-dependent BLAS summation order moves probabilities by ~1e-7."""
        cached = self.__dict__.get("_inference")
        if cached is None or cached[0] is not self.module_:
            twin = copy.deepcopy(self.module_).to("cpu").double().eval()
            cached = (self.module_, twin)
            self.__dict__["_inference"] = cached
        return cached[1]

    @torch.no_grad()
    def predict_proba(self, x) -> np.ndarray:
        module = self._inference_module()
        out = [torch.softmax(module(torch.from_numpy(gather(x, pos)).double()), dim=1)
               for pos in batches(x, 2048)]
        proba = torch.cat(out).numpy() if out else np.zeros((0, 3))
        return proba / proba.sum(axis=1, keepdims=True)

    def save_native(self, path: Path) -> list[str]:
        torch.save(self.module_.state_dict(), Path(path) / WEIGHTS)
        meta = {"input_shape": list(self.input_shape_), "history": self.history_}
        (Path(path) / META).write_text(json.dumps(meta, indent=2))
        return [WEIGHTS, META]

    def native_state(self) -> dict:
        return {"input_shape": list(self.input_shape_), "epochs": len(self.history_)}

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> TorchClassifier:
        params = dict(params)  # `network`: a partial, rebuilt by load_model's trusted import
        params.pop("trainer", None)  # prediction needs no training loop
        model = cls(**params)
        meta = json.loads((Path(path) / META).read_text())
        model._set_classes()
        model.input_shape_ = tuple(meta["input_shape"])
        model.history_ = meta["history"]
        model.module_ = model._build(model.input_shape_)
        weights = torch.load(Path(path) / WEIGHTS, map_location="cpu", weights_only=True)
        model.module_.load_state_dict(weights)
        model.module_.eval()
        return model

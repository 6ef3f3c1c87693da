"""Adapter contract: a :class:`~factory.dataset.Dataset` split -> what a model family eats.

An adapter is fitted on training rows only (scalers, class weights) and then transforms
any rows. Models declare ``input_kind``; an adapter declares the kinds it produces, and the
pairing is checked in one place (:func:`check_compatible`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from factory.errors import FactoryError


@dataclass
class TabularInput:
    """2-D model input. ``y`` holds class indices 0..2 for labels -1/0/1 (None at predict)."""

    X: np.ndarray
    y: np.ndarray | None
    weight: np.ndarray | None
    feature_names: list[str]

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, keep: np.ndarray) -> TabularInput:
        """The samples selected by ``keep`` (boolean mask or positions)."""
        return replace(self, X=self.X[keep], y=None if self.y is None else self.y[keep],
                       weight=None if self.weight is None else self.weight[keep])

    def permute_feature(self, j: int, rng: np.random.Generator) -> TabularInput:
        """A copy with column ``j`` shuffled across rows (permutation importance)."""
        X = self.X.copy()
        X[:, j] = rng.permutation(X[:, j])
        return replace(self, X=X)


def check_compatible(adapter_kind: str, model) -> None:
    """Raise a clear error when a model cannot eat what the adapter produces."""
    kind = getattr(model, "input_kind", "tabular")
    if kind != adapter_kind:
        raise FactoryError(
            f"model {type(model).__name__} takes '{kind}' input but the adapter produces "
            f"'{adapter_kind}': use `adapter={kind}` or drop the `adapter=` override"
        )


def batches(x, batch_size: int, order: np.ndarray | None = None):
    """Yield position arrays of ``batch_size`` over ``x`` (in ``order`` when given)."""
    order = np.arange(len(x)) if order is None else order
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def gather(x, positions: np.ndarray) -> np.ndarray:
    """One batch of model input: a lazy input's ``batch`` or rows of a 2-D tabular input."""
    if hasattr(x, "batch"):
        return x.batch(positions)
    X = x.X if hasattr(x, "X") else x
    return np.ascontiguousarray(X[positions], dtype=np.float32)

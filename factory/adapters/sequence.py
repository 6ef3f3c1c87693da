"""Sequence adapter (3-D): windows of the last ``seq_len`` bars ending at each labelled bar.

Scaling and sample weights are the tabular adapter's (fitted on training rows only); the
windows are lazy (:mod:`factory.adapters.windows`): the input holds the dataset's 2-D matrix
and the window-end rows, and a batch of ``(batch, seq_len, features)`` windows is gathered
and standardised only when the trainer asks for it.
"""

from __future__ import annotations

import logging

import numpy as np

from factory.adapters.tabular import TabularAdapter
from factory.adapters.windows import SequenceInput, cached_segment_position, window_ends
from factory.dataset import Dataset
from factory.errors import FactoryError

log = logging.getLogger(__name__)


class SequenceAdapter(TabularAdapter):
    """3-D adapter (``conf/adapter/sequence.yaml``).

    Parameters
    ----------
    seq_len: bars per window; the window of the row at bar t is bars t-seq_len+1..t of the
        same symbol and segment (see :mod:`factory.adapters.windows`).
    scaler, class_weight, sample_weight, clip: as :class:`TabularAdapter` (``auto`` takes
        the model's ``scaling``: standard for neural nets).
    """

    kind = "sequence"

    def __init__(self, seq_len: int = 60, scaler: str = "auto", class_weight: str = "balanced",
                 sample_weight: str = "uniqueness", clip: float | None = 10.0) -> None:
        super().__init__(scaler=scaler, class_weight=class_weight, sample_weight=sample_weight,
                         clip=clip)
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise FactoryError(f"`adapter.seq_len` must be a positive int, got {seq_len!r}")
        self.seq_len = seq_len

    def fit(self, ds: Dataset, rows: np.ndarray, model=None) -> SequenceAdapter:
        """Scaler and class weights from the training rows that have a window."""
        ends, _ = window_ends(ds.meta, rows, self.seq_len, cached_segment_position(ds))
        if len(ends) == 0:
            raise FactoryError(
                f"no training row has a full window of `adapter.seq_len={self.seq_len}` bars "
                f"inside its segment; lower adapter.seq_len or add data (e.g. data.days=240)"
            )
        super().fit(ds, ends, model)
        self.dropped_ = {}
        return self

    def transform(self, ds: Dataset, rows: np.ndarray) -> SequenceInput:
        """Lazy windows for the rows of ``rows`` that have one (the others are counted)."""
        ends, dropped = window_ends(ds.meta, rows, self.seq_len, cached_segment_position(ds))
        for split, count in dropped.items():
            self.dropped_[split] = max(self.dropped_.get(split, 0), count)
        if dropped:
            log.info("sequence windows: %s rows without %d in-segment bars dropped",
                     dropped, self.seq_len)
        y = ds.label_index(ends)
        return self.input_from_rows(ds.matrix(), ends, y, self.weights(ds, ends, y))

    def input_from_rows(self, X: np.ndarray, ends: np.ndarray | None = None,
                        y: np.ndarray | None = None,
                        weight: np.ndarray | None = None) -> SequenceInput:
        """Lazy windows of the feature rows ``X`` ending at ``ends`` (default: one window,
        ending at the last row): the path of :meth:`transform`, also fed directly by a
        streamer's newest ``seq_len`` rows (no Dataset)."""
        ends = np.array([len(X) - 1]) if ends is None else ends
        scaled = self.center_ is not None
        return SequenceInput(
            X=X, ends=ends, seq_len=self.seq_len, y=y, weight=weight,
            rows=ends, feature_names=self.feature_names_,
            center=self.center_ if scaled else None, scale=self.scale_ if scaled else None,
            clip=self.clip if scaled else None,
        )

    def state(self) -> dict:
        state = super().state()
        state["params"]["seq_len"] = self.seq_len
        state["dropped"] = dict(getattr(self, "dropped_", {}))
        return state

    @classmethod
    def from_state(cls, state: dict) -> SequenceAdapter:
        adapter = super().from_state(state)
        adapter.dropped_ = dict(state.get("dropped", {}))
        return adapter

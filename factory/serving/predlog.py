"""The server's prediction log and its live drift check.

:class:`LogSink` appends every served prediction to a
:class:`~factory.monitoring.log.PredictionLog` (issue 14's log: the probabilities, the
trading rule's side, the label's widths at the decision, the model's input features) and
writes it to ``serve.log.path`` every ``serve.log.flush_seconds`` and at shutdown
(atomically: the file on disk is always a whole log). A log already at that path is read
at start and appended to, so ``task=monitor`` sees one log across restarts.

:class:`DriftCheck` grades the rows of the version serving against the bundle's training
reference (``reference.json``) with the :class:`~factory.monitoring.monitor.Monitor` of
``serve.drift.monitor`` (``conf/monitor``): the PSI of every logged feature and class
probability, and the worst level (ok / warn / alert) for ``/health`` and ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pandas as pd

from factory.monitoring.log import PredictionLog
from factory.monitoring.monitor import Monitor
from factory.monitoring.reference import ReferenceProfile

log = logging.getLogger(__name__)
LEVELS = {"ok": 0, "warn": 1, "alert": 2}


class LogSink:
    """Collects served predictions and writes them to ``path`` (None: kept in memory only).

    :meth:`record` only appends to a small batch under a lock (O(1), what a request pays);
    turning batches into the log's frame and writing the file happen in :meth:`flush`, on
    the background thread, after the batch has been swapped out, so requests never wait for
    a write.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._lock, self._write_lock = threading.Lock(), threading.Lock()
        old = PredictionLog.read(self.path) if self.path and self.path.is_file() else None
        self._frame = old.frame() if old is not None else None
        self._batch = PredictionLog()
        self.rows = 0 if self._frame is None else len(self._frame)
        self._written = self.rows
        self.written_at, self.error = None, None

    def record(self, **row) -> None:
        """One served prediction (the arguments of :meth:`PredictionLog.record`)."""
        with self._lock:
            self._batch.record(**row)
            self.rows += 1

    def _collect(self) -> pd.DataFrame:
        """Every row so far as one frame (call with ``_write_lock`` held)."""
        with self._lock:
            batch, self._batch, rows = self._batch, PredictionLog(), self.rows
        new = batch.frame()
        if len(new):
            both = new if self._frame is None or not len(self._frame) else pd.concat(
                [self._frame, new], ignore_index=True)
            self._frame = PredictionLog(both).frame()
        elif self._frame is None:
            self._frame = new
        assert len(self._frame) == rows  # nothing recorded is lost between batches
        return self._frame

    def frame(self) -> pd.DataFrame:
        """A copy of every row so far."""
        with self._write_lock:
            return self._collect().copy()

    def flush(self) -> bool:
        """Write the log if rows were added since the last write; a failed write is logged
        and shown in ``/health``, and retried at the next flush."""
        if self.path is None:
            return False
        with self._write_lock:
            if self.rows == self._written:
                return False
            frame = self._collect()
            try:
                PredictionLog(frame).write(self.path)
            except OSError as exc:
                self.error = f"writing {self.path} failed: {exc}"
                log.error("prediction log: %s (retried at the next flush)", self.error)
                return False
            self._written, self.written_at, self.error = len(frame), time.time(), None
            return True

    def status(self) -> dict:
        return {"path": None if self.path is None else str(self.path), "rows": self.rows,
                "unwritten": self.rows - self._written, "written_at": self.written_at,
                "error": self.error}


class DriftCheck:
    """PSI of the logged predictions of one model against its bundle's reference."""

    def __init__(self, monitor: Monitor | None) -> None:
        self.monitor = monitor
        self.state: dict = {"level": "not graded", "psi_max": None, "column": None,
                            "rows": 0, "checked_at": None, "note": "no check yet"}

    def check(self, bundle_path: Path, model: str, frame: pd.DataFrame) -> dict:
        """Grade the rows of ``model`` in ``frame``; the result is also kept in ``state``."""
        path = Path(bundle_path) / "reference.json"
        rows = frame[frame["model"] == model]
        state = {"level": "not graded", "psi_max": None, "column": None, "rows": len(rows),
                 "checked_at": time.time(), "note": None}
        if self.monitor is None:
            state["note"] = "drift check off (serve.drift.every_seconds: null)"
        elif not path.is_file():
            state["note"] = f"the bundle has no reference profile ({path.name})"
        else:
            report = self.monitor.check(ReferenceProfile.load(path), rows)
            if len(report.psi):
                top = report.psi.iloc[0]
                state.update(level=str(top["level"]), psi_max=float(top["psi"]),
                             column=str(top["column"]))
            state["note"] = "; ".join(report.notes) or None
        self.state = state
        return state

    @property
    def level_code(self) -> int:
        return LEVELS.get(self.state["level"], -1)

"""The production check: drift, calibration, live performance, retraining recommendations.

``Monitor`` (``conf/monitor/default.yaml``) compares a prediction log
(:mod:`factory.monitoring.log`) with the reference profile frozen at training time
(:mod:`factory.monitoring.reference`) and returns a :class:`MonitorReport`:

* **Drift**: PSI of every logged feature and of each class probability against the frozen
  deciles; ``psi_warn`` / ``psi_alert`` (0.1 / 0.2) grade it. Needs ``min_rows`` rows.
* **Calibration** (resolved rows): the reliability table, ECE and Brier score, next to the
  validation figures.
* **Performance**: accuracy and the per-trade Sharpe of the actions over the last
  ``window`` resolved rows, against the validation figures; both also as rolling curves.
* **Retraining triggers** (the research plan's three): calendar (``retrain_every_days``
  since the training data ended), an accuracy drop of ``accuracy_drop`` (10%) relative to
  validation, and drift. Each fires as a recommendation with its reason and severity.

The exit code is the worst severity: 0 healthy, 1 warn, 2 alert (drift above
``psi_alert``, or the accuracy drop), so cron or CI can act on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from factory.errors import FactoryError
from factory.monitoring.calibration import CLASSES, reliability, summary, trade_returns
from factory.monitoring.log import PREFIX
from factory.monitoring.reference import PROBA, ReferenceProfile

log = logging.getLogger(__name__)
STATUS = ("healthy", "warn", "alert")
MIN_TRADES = 30  # trades in the window before the rolling per-trade Sharpe is drawn


@dataclass
class MonitorReport:
    status: int
    psi: pd.DataFrame               # column, kind (feature / prediction), psi, level
    live: dict                      # accuracy, brier, ece, trades, trade_mean, trade_sharpe
    reference: dict                 # the validation figures of the profile
    reliability: pd.DataFrame
    rolling: pd.Series              # rolling accuracy by resolved row's timestamp
    recommendations: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: int = 0
    resolved: int = 0
    psi_warn: float = 0.1
    psi_alert: float = 0.2
    rolling_sharpe: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    window: int = 500

    @property
    def exit_code(self) -> int:
        return int(self.status)

    @property
    def drifted(self) -> list[str]:
        return self.psi.loc[self.psi["level"] == "alert", "column"].tolist()

    def to_dict(self) -> dict:
        return {"status": STATUS[self.status], "exit_code": self.exit_code, "rows": self.rows,
                "resolved": self.resolved, "drifted": self.drifted,
                "psi": self.psi.to_dict(orient="records"), "live": self.live,
                "reference": self.reference, "recommendations": self.recommendations,
                "reliability": self.reliability.to_dict(orient="records"), "notes": self.notes}

    def write(self, out_dir: Path) -> list[str]:
        """``monitor_report.md``, ``monitor.json`` and the PNGs; returns the file names."""
        from factory.monitoring.report import write_report

        return write_report(self, Path(out_dir), self.psi_warn, self.psi_alert)


class Monitor:
    """Thresholds and windows of the production check (every default in conf/monitor/)."""

    def __init__(self, psi_warn: float = 0.1, psi_alert: float = 0.2, min_rows: int = 200,
                 calibration_bins: int = 10, window: int = 500, min_resolved: int = 200,
                 accuracy_drop: float = 0.10, sharpe_drop: float = 0.5,
                 retrain_every_days: float = 30.0) -> None:
        if not 0 < psi_warn < psi_alert:
            raise FactoryError(f"`monitor.psi_warn` must be > 0 and below `monitor.psi_alert`"
                               f", got {psi_warn!r} / {psi_alert!r} (defaults 0.1 / 0.2)")
        for name, v in (("min_rows", min_rows), ("window", window),
                        ("min_resolved", min_resolved), ("calibration_bins", calibration_bins)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise FactoryError(f"`monitor.{name}` must be a positive int, got {v!r}")
        self.psi_warn, self.psi_alert = float(psi_warn), float(psi_alert)
        self.min_rows, self.calibration_bins = min_rows, calibration_bins
        self.window, self.min_resolved = window, min_resolved
        self.accuracy_drop, self.sharpe_drop = float(accuracy_drop), float(sharpe_drop)
        self.retrain_every_days = retrain_every_days

    def _level(self, value: float) -> str:
        return "alert" if value >= self.psi_alert else "warn" if value >= self.psi_warn else "ok"

    def check(self, profile: ReferenceProfile, log_frame: pd.DataFrame) -> MonitorReport:
        """Grade ``log_frame`` (a prediction log's rows) against ``profile``."""
        notes, recs = [], []
        logged = {c[len(PREFIX):] for c in log_frame.columns if c.startswith(PREFIX)}
        feats = [f for f in profile.features if f in logged]
        absent = [f for f in profile.features if f not in logged]
        if absent:
            notes.append(f"{len(absent)} model features are not in the log (no drift check): "
                         f"{', '.join(absent[:10])}{' ...' if len(absent) > 10 else ''}")
        rows = []
        if len(log_frame) >= self.min_rows:
            view = log_frame.rename(columns={PREFIX + f: f for f in feats})
            for kind, cols in (("feature", feats),
                               ("prediction", [c for c in PROBA if c in profile.edges])):
                for col, value in profile.psi(view, cols).items():
                    rows.append({"column": col, "kind": kind, "psi": value,
                                 "level": self._level(value)})
        else:
            notes.append(f"{len(log_frame)} logged rows, fewer than `monitor.min_rows` "
                         f"({self.min_rows}): no drift check")
        psi = pd.DataFrame(rows, columns=["column", "kind", "psi", "level"]).sort_values(
            "psi", ascending=False, ignore_index=True)
        for level, severity in (("alert", 2), ("warn", 1)):
            hit = psi[psi["level"] == level]
            if len(hit):
                top = ", ".join(f"{c} ({v:.2f})" for c, v in zip(hit["column"], hit["psi"],
                                                                 strict=True))
                limit = self.psi_alert if level == "alert" else self.psi_warn
                recs.append({"trigger": "drift", "severity": severity,
                             "reason": f"PSI >= {limit:g} on {len(hit)} column(s): {top}"})
        live, table, rolling = {}, pd.DataFrame(), pd.Series(dtype=float)
        rolling_sharpe = pd.Series(dtype=float)
        done = log_frame[log_frame["outcome"].notna()].sort_values("timestamp")
        ref = profile.validation
        if len(done) >= self.min_resolved:
            p = done[PROBA].to_numpy(np.float64)
            y = done["outcome"].to_numpy().astype(int)
            recent = done.tail(self.window)
            live = summary(recent[PROBA].to_numpy(np.float64), recent["outcome"].astype(int),
                           recent["side"].to_numpy(), recent["ret_long"].to_numpy(),
                           recent["ret_short"].to_numpy(), recent["cost"].to_numpy(),
                           self.calibration_bins)
            table = reliability(p, y, self.calibration_bins)
            hit = pd.Series((CLASSES[p.argmax(axis=1)] == y).astype(float),
                            index=pd.DatetimeIndex(done["timestamp"]))
            rolling = hit.rolling(self.window, min_periods=self.min_resolved).mean()
            r = pd.Series(trade_returns(done["side"].to_numpy(), done["ret_long"].to_numpy(),
                                        done["ret_short"].to_numpy(), done["cost"].to_numpy()),
                          index=hit.index)
            roll = r.rolling(self.window, min_periods=MIN_TRADES)
            rolling_sharpe = roll.mean() / roll.std()
            recs += self._performance(live, ref)
        else:
            notes.append(f"{len(done)} resolved rows, fewer than `monitor.min_resolved` "
                         f"({self.min_resolved}): no calibration or performance check")
        recs += self._calendar(profile, log_frame)
        status = max([r["severity"] for r in recs], default=0)
        report = MonitorReport(status, psi, live, dict(ref), table, rolling, recs, notes,
                               rows=len(log_frame), resolved=len(done),
                               psi_warn=self.psi_warn, psi_alert=self.psi_alert,
                               rolling_sharpe=rolling_sharpe, window=self.window)
        log.info("monitor: %s <rows=%d, resolved=%d, drifted=%s>", STATUS[status],
                 len(log_frame), len(done), report.drifted)
        return report

    def _performance(self, live: dict, ref: dict) -> list[dict]:
        recs = []
        acc, ref_acc = live.get("accuracy"), ref.get("accuracy")
        if ref_acc and acc is not None and np.isfinite(acc):
            drop = 1.0 - acc / ref_acc
            if drop >= self.accuracy_drop:
                recs.append({"trigger": "accuracy", "severity": 2,
                             "reason": f"accuracy {acc:.3f} over the last {live['rows']} "
                                       f"resolved rows is {drop:.0%} below validation "
                                       f"({ref_acc:.3f}); limit {self.accuracy_drop:.0%}"})
        sh, ref_sh = live.get("trade_sharpe"), ref.get("trade_sharpe")
        if ref_sh and ref_sh > 0 and sh is not None and np.isfinite(sh) and \
                sh < ref_sh * (1.0 - self.sharpe_drop):
            recs.append({"trigger": "sharpe", "severity": 1,
                         "reason": f"per-trade Sharpe {sh:.3f} is below {1 - self.sharpe_drop:.0%}"
                                   f" of validation ({ref_sh:.3f})"})
        return recs

    def _calendar(self, profile: ReferenceProfile, log_frame: pd.DataFrame) -> list[dict]:
        if profile.trained_through is None or not len(log_frame) or \
                self.retrain_every_days is None:
            return []
        last = pd.Timestamp(log_frame["timestamp"].max())
        since = pd.Timestamp(profile.trained_through)
        if last.tzinfo is None and since.tzinfo is not None:
            last = last.tz_localize(since.tzinfo)
        days = (last - since) / pd.Timedelta(days=1)
        if days >= self.retrain_every_days:
            return [{"trigger": "calendar", "severity": 1,
                     "reason": f"{days:.0f} days since the training data ended "
                               f"({since:%Y-%m-%d}); retrain every {self.retrain_every_days:g}"}]
        return []


def run_check(monitor: Monitor, profile_path: Path, log_path: Path, out_dir: Path | None = None
              ) -> int:
    """Load, check, write the report (when ``out_dir``), return the exit code."""
    from factory.monitoring.log import PredictionLog

    report = monitor.check(ReferenceProfile.load(profile_path),
                           PredictionLog.read(log_path).frame())
    if out_dir is not None:
        report.write(out_dir)
    return report.exit_code

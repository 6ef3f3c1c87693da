"""The simulation's prediction log: each decision with its inputs, the action taken, and
(after :meth:`~factory.monitoring.log.PredictionLog.resolve`) the realised outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd

from factory.monitoring.log import PredictionLog
from factory.simulation.decisions import PROBA, side_from_proba
from factory.simulation.result import SimResult


def prediction_log(pred: pd.DataFrame, result: SimResult, threshold: float, horizon: int,
                   timeframe: pd.Timedelta, features: pd.DataFrame | None = None,
                   model: str = "") -> PredictionLog:
    """A log of the prediction rows ``pred`` (``timestamp, symbol, p_*`` and the widths
    ``width_up/width_dn`` in points), with the side of the trading rule and the contracts
    the simulator ordered at that decision (0 when it sent no order: a position was open, a
    limit blocked it, or the size rounded to 0). ``features``: the model's input rows, in
    ``pred``'s order."""
    side = side_from_proba(pred[PROBA].to_numpy(np.float64), threshold,
                           pred["side"].to_numpy() if "side" in pred else None)
    orders = result.orders
    qty = pd.Series(0.0, index=pred.index)
    if len(orders):
        key = pd.MultiIndex.from_arrays([orders["symbol"].astype(str),
                                         orders["created_time"] - timeframe])
        ordered = pd.Series(orders["target"].abs().to_numpy(), index=key)
        ordered = ordered[~ordered.index.duplicated(keep="last")]
        at = pd.MultiIndex.from_arrays([pred["symbol"].astype(str),
                                        pd.DatetimeIndex(pred["timestamp"])])
        qty = pd.Series(ordered.reindex(at).fillna(0.0).to_numpy(), index=pred.index)
    cols = ["timestamp", *PROBA, "width_up", "width_dn"]
    frame = pred[cols].reset_index(drop=True).assign(
        symbol=pred["symbol"].astype(str).to_numpy(), side=side, qty=qty.to_numpy(),
        horizon=int(horizon))
    log = PredictionLog()
    log.extend(frame, None if features is None else features.reset_index(drop=True), model)
    return log

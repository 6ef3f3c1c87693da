"""Gap report: where a symbol's bars are missing, classified against the session calendar.

A gap is any spacing between consecutive bars larger than the timeframe. Classes:

* ``daily_break``: the exchange's daily maintenance break (spacing = break length + one bar);
* ``weekend``: a gap covering a Saturday;
* ``holiday``: any other gap of 12 hours or more (an exchange holiday, seen as a gap);
* ``intraday``: missing bars inside a session (data outages, halted markets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def gap_report(index: pd.DatetimeIndex, timeframe: pd.Timedelta,
               break_minutes: float = 60.0, top: int = 5) -> dict:
    """Counts per gap class, missing-bar estimates, and the largest intraday gaps."""
    if len(index) < 2:
        return {"gaps": 0}
    start, end = index[:-1], index[1:]
    spacing = end - start
    gap = spacing > timeframe
    daily = gap & (spacing == pd.Timedelta(minutes=break_minutes) + timeframe)
    span_days = (end.normalize() - start.normalize()).days.to_numpy()
    days_to_saturday = (5 - start.day_of_week.to_numpy()) % 7
    covers_saturday = days_to_saturday <= span_days
    weekend = gap & ~daily & covers_saturday & (spacing >= pd.Timedelta(hours=24))
    long = gap & ~daily & ~weekend & (spacing >= pd.Timedelta(hours=12))
    intraday = gap & ~daily & ~weekend & ~long
    missing = ((spacing[intraday] / timeframe) - 1).to_numpy()
    order = np.argsort(-spacing[intraday].to_numpy(), kind="stable")[:top]
    largest = [{"after": str(start[intraday][i]), "minutes": float(spacing[intraday][i]
                                                                   / pd.Timedelta(minutes=1))}
               for i in order]
    return {
        "gaps": int(gap.sum()),
        "daily_break": int(daily.sum()),
        "weekend": int(weekend.sum()),
        "holiday": int(long.sum()),
        "intraday": int(intraday.sum()),
        "intraday_missing_bars": int(np.round(missing.sum())),
        "largest_intraday": largest,
    }

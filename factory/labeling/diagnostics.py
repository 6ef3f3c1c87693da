"""What the labels of each horizon look like: the table of docs/labels.md.

:func:`horizon_table` labels every symbol at several horizons with one labeler's settings
and reports, per horizon: label shares, the share of labels that end at the vertical barrier,
the median and 90th percentile holding period (``exit_idx - bar_idx``: bars from the
decision to the exit bar), and the mean round-trip cost as a fraction of the mean barrier
width; plus how often each horizon's label equals the longest horizon's. Rows are the bars
labelled at every horizon (after the width warm-up, before the longest window's tail).

    from factory.data.synthetic import SyntheticSource
    from factory.labeling.diagnostics import horizon_table
    from factory.labeling.triple_barrier import TripleBarrierLabeler
    table, agreement = horizon_table(SyntheticSource(seed=42).load(), TripleBarrierLabeler())
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from factory.data.bars import BarSet
from factory.labeling.triple_barrier import TripleBarrierLabeler


def horizon_table(barset: BarSet, labeler: TripleBarrierLabeler,
                  horizons: tuple[int, ...] = (5, 10, 15, 20)) -> tuple[pd.DataFrame, dict]:
    """(per-horizon statistics, ``{"h5_vs_h20": agreement, ...}``); see the module docstring."""
    horizons = tuple(sorted(horizons))
    longest = horizons[-1]
    labels: dict[int, list] = {h: [] for h in horizons}
    rows: dict[int, dict[str, list]] = {h: {"hold": [], "vertical": [], "cost_width": []}
                                        for h in horizons}
    for sym in barset.symbols:
        bars = barset.bars[sym]
        lab = copy.copy(labeler)
        lab.horizon, lab.horizons, lab.meta, lab.events = longest, list(horizons), None, "all"
        out = lab.label(bars, barset.instruments[sym])
        um, lm = lab.multipliers(sym)
        close = bars["close"].to_numpy(np.float64)
        keep = np.ones(len(bars), bool)
        for h in horizons:
            keep &= out[f"exit_idx_h{h}"].to_numpy() >= 0
        pos = np.arange(len(bars))
        for h in horizons:
            width = 0.5 * (um + lm) * lab.unit(bars, h) / close  # mean barrier, as a return
            labels[h].append(out[f"label_h{h}"].to_numpy()[keep])
            rows[h]["hold"].append((out[f"exit_idx_h{h}"].to_numpy() - pos)[keep])
            rows[h]["vertical"].append(out[f"touch_h{h}"].to_numpy()[keep] == 0)
            rows[h]["cost_width"].append((out[f"cost_h{h}"].to_numpy() / width)[keep])
    table, flat = {}, {h: np.concatenate(v) for h, v in labels.items()}
    for h in horizons:
        hold = np.concatenate(rows[h]["hold"])
        table[h] = {"short": float(np.mean(flat[h] == -1)), "flat": float(np.mean(flat[h] == 0)),
                    "long": float(np.mean(flat[h] == 1)),
                    "vertical": float(np.mean(np.concatenate(rows[h]["vertical"]))),
                    "hold_median": float(np.median(hold)),
                    "hold_p90": float(np.percentile(hold, 90)),
                    "cost_to_width": float(np.mean(np.concatenate(rows[h]["cost_width"]))),
                    "rows": int(len(hold))}
    agreement = {f"h{h}_vs_h{longest}": float(np.mean(flat[h] == flat[longest]))
                 for h in horizons[:-1]}
    frame = pd.DataFrame(table).T
    frame.index.name = "horizon"
    return frame, agreement

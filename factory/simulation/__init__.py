"""Live-trading simulation: a compiled, event-ordered trading loop over bars.

``Simulator`` (``conf/sim/``) turns per-bar decisions (class probabilities or signals) into
orders, fills, trades, per-bar positions and equity in currency, with latency, slippage,
commissions, the label's barrier exits or hold-until-the-signal-changes, sizing and risk
limits. The state it carries is explicit (``SimState``), so walk-forward retraining drives
it segment by segment. See docs/simulation.md.
"""

from factory.simulation.decisions import bet_size, from_predictions, side_from_proba
from factory.simulation.engine import CorrelationFilter, SimState, Simulator
from factory.simulation.result import SimResult

__all__ = ["CorrelationFilter", "SimResult", "SimState", "Simulator", "bet_size",
           "from_predictions", "side_from_proba"]

"""``task=portfolio``: per-instrument bundles traded as one book, sized and limited together.

    python run.py task=portfolio portfolio.bundles=[<run>,<run>,...] portfolio.sizing=erc \\
        portfolio.target_vol=0.1 portfolio.baseline=[<rule run>,...]
    python run.py task=portfolio 'portfolio.bundles=[registry:xgboost_h20_*]'
    python run.py task=portfolio portfolio.load=registry:<name>          # a saved portfolio

1. Load the bundles (:mod:`factory.portfolio.sources`): their bars, their decisions, and the
   validation and test periods common to all of them.
2. Choose the parameters with Optuna on the validation period only
   (:mod:`factory.portfolio.optimize`); skipped with ``portfolio.load``.
3. Simulate on both periods: the chosen portfolio, the configured one, the equal-weight book,
   the rule baseline (``portfolio.baseline``) and each instrument alone.
4. Write ``portfolio/`` (:mod:`factory.portfolio.report`): the tearsheet of the chosen book on
   the test period with the comparison, correlation and contribution sections,
   ``portfolio_metrics.json``, the CSV tables, the trials, the simulation frames, and
   ``portfolio.yaml`` (promoted into the portfolio registry with ``portfolio.promote=true``).

Returns the chosen book's validation objective (never a test figure).
"""

from __future__ import annotations

import logging
import math
import time

from omegaconf import DictConfig, OmegaConf

from factory.config import build
from factory.errors import FactoryError
from factory.portfolio import report, store
from factory.portfolio.book import BookSpec, run_book, simulator
from factory.portfolio.optimize import check_search, optimise
from factory.portfolio.sources import Loader, universe
from factory.tasks.common import run_dir

log = logging.getLogger(__name__)


class Books:
    """Simulates books of one universe, with the grid returns computed once per grid step."""

    def __init__(self, cfg: DictConfig, uni) -> None:
        self.cfg, self.uni = cfg, uni
        self.capital = float(cfg.portfolio.capital)
        self.max_contracts = int(cfg.portfolio.max_contracts)
        node = cfg.sim.tearsheet.copy()
        node.title = "Portfolio"
        self.tearsheet = build(node)
        self.point_values = {s: i.point_value for s, i in uni.instruments.items()}
        self._returns: dict = {}

    def run(self, decisions, spec: BookSpec, period, symbols=None):
        symbols = sorted(symbols or decisions)
        sizer = spec.sizer(self.uni.trading_days_per_year, self.uni.session_minutes)
        key = (str(sizer.bar), tuple(symbols))
        if key not in self._returns:
            self._returns[key] = sizer.grid_returns({s: self.uni.bars[s] for s in symbols},
                                                    self.uni.timeframe)
        engine = simulator(self.cfg.sim, spec, self.capital, self.uni.horizon,
                           self.max_contracts)
        return run_book(self.uni, decisions, spec, engine, period, symbols,
                        self._returns[key])

    def metrics(self, run) -> dict:
        if run.result.equity.empty:
            return {}
        return self.tearsheet.metrics(run.result, self.point_values, self.uni.timeframe)


def _objective(books: Books, uni, key: str):
    def score(spec: BookSpec) -> float:
        m = books.metrics(books.run(uni.model.decisions, spec, uni.val))
        if m and key not in m:
            known = sorted(k for k, v in m.items() if isinstance(v, float))
            raise FactoryError(f"`portfolio.optimize.objective={key}` is not a simulation "
                               f"metric; use one of {known}")
        value = m.get(key)
        return float("nan") if value is None else float(value)
    return score


def run(cfg: DictConfig) -> float:
    started = time.perf_counter()
    p = cfg.portfolio
    if p.get("promote") and not cfg.get("reason"):
        raise FactoryError('`portfolio.promote=true` needs reason="why this portfolio should '
                           'trade" (it goes to the registry history)')
    saved = store.load(p.load, p.registry) if p.get("load") else None
    spec = BookSpec.from_config(saved["params"] if saved else p)
    entries = list(p.bundles or []) or ([b["ref"] for b in saved["bundles"]] if saved else [])
    baseline = list(p.baseline or []) or ([b["ref"] for b in saved.get("baseline") or []]
                                          if saved else [])
    opt = p.optimize
    search = OmegaConf.to_container(opt.search, resolve=True) or {}
    n_trials = 0 if saved else int(opt.n_trials)
    if n_trials:
        check_search(spec, search)  # before any work
    loader = Loader(cfg.registry.path, cfg.get("trusted_modules") or [],
                    bool(cfg.get("allow_version_mismatch", False)))
    uni = universe(loader, entries, baseline)
    books = Books(cfg, uni)
    chosen, trials = optimise(spec, search, n_trials, int(opt.seed),
                              _objective(books, uni, str(opt.objective)))
    equal = BookSpec.from_config({**chosen.to_dict(), "sizing": "equal", "target_vol": None,
                                  "leverage": 1.0, "correlation_filter": None})
    plan = {"portfolio": (uni.model.decisions, chosen), "equal weight": (uni.model.decisions,
                                                                          equal)}
    if len(trials):
        plan["configured"] = (uni.model.decisions, spec)
    if uni.baseline is not None:
        plan["rule"] = (uni.baseline.decisions, chosen)
    runs = {name: {split: books.run(dec, s, getattr(uni, split)) for split in ("val", "test")}
            for name, (dec, s) in plan.items()}
    figures = {split: {name: books.metrics(r[split]) for name, r in runs.items()}
               for split in ("val", "test")}
    for sym in sorted(uni.model.decisions):
        alone = books.run(uni.model.decisions, chosen, uni.test, [sym])
        figures["test"][f"{sym} alone"] = books.metrics(alone)
    out = run_dir(cfg) / "portfolio"
    best = runs["portfolio"]["test"]
    books.tearsheet.write(best.result, out, books.point_values, uni.timeframe)
    best.result.save(out / "simulation")
    tables, doc = _tables(books, uni, runs, figures, trials)
    name = str(p.get("name") or f"portfolio_{chosen.sizing}_h{uni.horizon}_"
               f"{'-'.join(sorted(uni.model.decisions))}")
    doc.update(name=name, chosen=chosen.to_dict(), configured=spec.to_dict(),
               periods={"val": [str(t) for t in uni.val], "test": [str(t) for t in uni.test]},
               objective=str(opt.objective), trials=len(trials),
               bundles=[m.describe() for m in uni.model.members],
               baseline=[m.describe() for m in uni.baseline.members] if uni.baseline else [])
    report.write(out, doc, tables, tables.pop("correlation"))
    value = figures["val"]["portfolio"].get(str(opt.objective))
    saved_path = store.save(out / store.FILE, {
        "name": name, "bundles": _refs(uni.model.members), "baseline":
        _refs(uni.baseline.members) if uni.baseline else [], "params": chosen.to_dict(),
        "capital": books.capital, "periods": doc["periods"], "objective": str(opt.objective),
        "validation": _headline(figures["val"]["portfolio"]),
        "test": _headline(figures["test"]["portfolio"]), "run": str(run_dir(cfg))})
    if p.get("promote"):
        version = store.promote(saved_path, p.registry, name, str(cfg.reason), str(run_dir(cfg)))
        log.info("promoted portfolio %s as version %d (live) in %s", name, version, p.registry)
    log.info("portfolio %s: validation %s %.3f; test Sharpe %.2f (equal weight %.2f%s) in "
             "%.1fs -> %s", name, opt.objective, value if value is not None else math.nan,
             _get(figures["test"]["portfolio"], "sharpe"),
             _get(figures["test"]["equal weight"], "sharpe"),
             f", rule {_get(figures['test']['rule'], 'sharpe'):.2f}" if "rule" in runs else "",
             time.perf_counter() - started, out / "tearsheet.html")
    return float("nan") if value is None else float(value)


def _get(m: dict, key: str) -> float:
    value = m.get(key)
    return math.nan if value is None else float(value)


def _headline(m: dict) -> dict:
    return {k: (None if m.get(k) is None or (isinstance(m[k], float) and not math.isfinite(
        m[k])) else float(m[k])) for k in report.COLUMNS}


def _refs(members) -> list[dict]:
    return [{"ref": m.ref, "path": str(m.path), "name": m.bundle.name,
             "manifest_sha256": store.manifest_sha(m.path)} for m in members]


def _tables(books: Books, uni, runs, figures, trials):
    """The report's tables and the metrics document (figures, contributions)."""
    import pandas as pd

    best = runs["portfolio"]["test"]
    tear = books.tearsheet
    daily = report.daily_contributions(best, books.capital, tear.gap, uni.timeframe,
                                       tear.session_minutes)
    realised = report.realised_contributions(daily, tear.periods)
    ante = report.ex_ante_contributions(best, uni, uni.test)
    rc = pd.DataFrame({"ex ante (allocation)": ante["allocation"],
                       "ex ante (held)": ante["held"], "realised": realised})
    rc.index.name = "symbol"
    rc.loc["total"] = rc.sum()
    pnl = report.pnl_contribution(best)
    pnl.index.name = "symbol"
    order = [f"{s} alone" for s in sorted(uni.model.decisions)] + [
        n for n in ("equal weight", "rule", "configured", "portfolio") if n in figures["test"]]
    comparison = report.comparison_table({n: figures["test"][n] for n in order})
    sizer = runs["portfolio"]["test"].estimates
    returns = books._returns[(str(sizer.step), tuple(best.symbols))]
    corr = report.correlation_matrix(returns, uni.test)
    tables = {"comparison": comparison, "risk_contributions": rc, "pnl_contribution": pnl,
              "correlation": corr}
    if len(trials):
        tables["trials"] = trials.set_index("trial")
    doc = {"validation": figures["val"], "test": figures["test"],
           "risk_contributions": {k: rc[k].to_dict() for k in rc.columns},
           "risk_points_held": ante["held_points"],
           "pnl_contribution": pnl["net P&L"].to_dict(), "correlation": corr}
    return tables, doc

"""Silent traps of issue 12 that used to produce a number instead of an error, each with the
behaviour it has now: instrument specs without costs, validation smaller than test, Sharpe
ratios on a handful of trades, unexplained zero trades, a constant model of one-class labels,
and exposure counted from float residue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.bars import make_instruments
from factory.errors import FactoryError
from factory.evaluation.backtest import bar_returns, exposure, run_backtest
from factory.evaluation.evaluator import Evaluator
from factory.evaluation.metrics import label_balance_problem, sharpe_standard_error
from factory.outputs.summary import format_value, summary_table
from factory.phase1 import load_or_build
from factory.splits.kfold import PurgedKFold
from factory.splits.walk_forward import WalkForward
from tests.conftest import CONF

# ----------------------------------------------------------------- instrument specs


def test_a_spec_without_costs_is_an_error_not_zero_costs():
    """Before: `+data.instruments.NQ={tick_size: 0.25, point_value: 5}` ran with commission and
    slippage 0 (val Sharpe -14.3 became +4.1). Now every field is required."""
    with pytest.raises(FactoryError, match=r"`data.instruments.NQ` has no `commission`.*"
                                           r"write 0 for none"):
        make_instruments({"NQ": {"tick_size": 0.25, "point_value": 5}}, ["NQ"])
    with pytest.raises(FactoryError, match=r"has no `slippage_ticks`"):
        make_instruments({"NQ": {"tick_size": 0.25, "point_value": 20, "commission": 2.1}},
                         ["NQ"])
    free = make_instruments({"X": {"tick_size": 0.25, "point_value": 5, "commission": 0,
                                   "slippage_ticks": 0}}, ["X"])  # 0 when written: allowed
    assert free["X"].round_trip_cost_points == 0.0
    with pytest.raises(FactoryError) as info:
        make_instruments({}, ["NQ"])
    hint = str(info.value)  # the hint is a complete spec, costs included
    for field in ("tick_size:", "point_value:", "commission:", "slippage_ticks:"):
        assert field in hint


def test_the_shipped_specs_are_complete_and_real():
    from omegaconf import OmegaConf

    specs = OmegaConf.to_container(OmegaConf.load(CONF / "data" / "instruments" / "cme.yaml"))
    wanted = {"ES", "MES", "NQ", "MNQ", "YM", "MYM", "RTY", "M2K", "GC", "MGC", "CL", "MCL",
              "6A", "6E"}
    assert wanted <= set(specs)
    built = make_instruments(specs, sorted(specs))
    tick_value = {s: i.tick_size * i.point_value for s, i in built.items()}
    assert tick_value["ES"] == 12.5 and tick_value["MES"] == 1.25 and tick_value["NQ"] == 5.0
    assert tick_value["MNQ"] == 0.5 and tick_value["YM"] == 5.0 and tick_value["RTY"] == 5.0
    assert tick_value["GC"] == 10.0 and tick_value["CL"] == 10.0 and tick_value["MCL"] == 1.0
    assert tick_value["6E"] == 6.25 and tick_value["6A"] == 5.0
    assert built["NQ"].point_value == 20.0  # the value the old hint got wrong (it said 5)
    assert all(i.commission > 0 and i.slippage_ticks == 1 for i in built.values())


# ----------------------------------------------------------------- split sizes


@pytest.fixture(scope="module")
def short_phase1(tmp_path_factory):
    """21 days with a 900-bar embargo: the old split left validation empty here."""
    from tests.conftest import compose_config

    cfg = compose_config(tmp_path_factory.mktemp("traps"), "data.days=21",
                         "cv.embargo_bars=900")
    return load_or_build(cfg)[0]


def test_validation_and_test_have_the_same_size_after_the_gaps(short_phase1):
    """Before: the embargo came out of validation alone (186 val rows against 1,627 test rows
    on 60 days; none at all here). Now the evaluation rows left after the test block's gap
    are shared equally, and the training block is the one it always was."""
    meta = short_phase1.meta
    for sym, sub in meta.groupby("symbol"):
        counts = sub["split"].value_counts()
        assert counts["val"] == counts["test"] > 100, (sym, counts.to_dict())
        old_cut = int(np.floor(0.7 * len(sub)))  # the old train/val cut, in rows
        names = sub.sort_values("bar_idx")["split"].to_numpy()
        assert (names[:old_cut] != "val").all() and (names[old_cut:] != "train").all()
        evaluation = names[old_cut:]
        assert counts["val"] == (len(evaluation) - (evaluation == "gap").sum() + 1) // 2


def test_kfold_holds_out_exactly_the_holdout_test_block(short_phase1):
    meta = short_phase1.meta
    test = meta["split"].to_numpy() == "test"
    for cv in (PurgedKFold(3, 20, 900), WalkForward(n_splits=2, purge_bars=20,
                                                     embargo_bars=900)):
        assert (cv.assign(meta) == meta["split"].to_numpy()).all()
        seen = np.zeros(len(meta), bool)
        for train, tested in cv.split(meta):
            seen[train] = seen[tested] = True
        assert not (seen & test).any()
        assert cv.report()["n_held_out"].iloc[0] == test.sum()


# ----------------------------------------------------------------- small samples


def _predictions(ds, split: str, seed: int, sharp: float = 1.0) -> pd.DataFrame:
    rows = ds.rows(split)
    meta = ds.meta.iloc[rows].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(rows), 3)) * sharp
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return meta.assign(p_short=proba[:, 0], p_flat=proba[:, 1], p_long=proba[:, 2])


def test_few_trades_are_marked_and_warned(short_phase1, caplog):
    """Before: a validation Sharpe of 24.4 on one trade read like any other figure."""
    ds = short_phase1
    evaluator = Evaluator(threshold=0.45, plots=False, min_trades=10**6, min_rows=10)
    pred = _predictions(ds, "val", 1)
    metrics, bt = evaluator.evaluate(pred, ds)
    metrics.update(evaluator.split_report(pred, ds, bt, "val"))
    assert metrics["n_trades"] > 0 and metrics["sharpe_se"] > 0
    reason = f"{metrics['n_trades']} trades < evaluation.min_trades=1000000"
    assert metrics["marks"]["sharpe"] == reason and metrics["marks"]["win_rate"] == reason
    assert "f1_macro" not in metrics["marks"]  # enough rows
    assert any("are marked as small-sample" in r.message for r in caplog.records)
    table = summary_table({"val": metrics, "test": metrics}, "title")
    sharpe_row = next(line for line in table.splitlines() if line.startswith("sharpe "))
    assert f"± {metrics['sharpe_se']:.2f} *" in sharpe_row
    assert f"* val: {reason}" in table
    assert next(ln for ln in table.splitlines() if ln.startswith("n_trades")).split()[1] == \
        str(metrics["n_trades"])


def test_sharpe_standard_error_follows_serial_correlation():
    """Lo (2002): i.i.d. returns give the i.i.d. formula; positively autocorrelated returns
    (positions held for many bars) a wider error, by about sqrt((1 + rho) / (1 - rho))."""
    rng = np.random.default_rng(0)
    n, rho = 20_000, 0.5
    iid = rng.normal(0.02, 1.0, n)
    sr = iid.mean() / iid.std(ddof=1)
    hac, plain = sharpe_standard_error(sr, n, 1.0, returns=iid), sharpe_standard_error(sr, n, 1.0)
    assert hac == pytest.approx(plain, rel=0.1)
    e = rng.normal(size=n)
    ar = np.empty(n)
    ar[0] = e[0]
    for t in range(1, n):
        ar[t] = rho * ar[t - 1] + e[t]
    ar += 0.02
    sr = ar.mean() / ar.std(ddof=1)
    ratio = sharpe_standard_error(sr, n, 1.0, returns=ar, lags=60) / sharpe_standard_error(
        sr, n, 1.0)
    assert ratio == pytest.approx(np.sqrt((1 + rho) / (1 - rho)), rel=0.15)
    assert np.isnan(sharpe_standard_error(0.0, 5, 1.0, returns=np.zeros(5)))


# ----------------------------------------------------------------- zero trades


def test_zero_trades_say_why(short_phase1):
    ds = short_phase1
    pred = _predictions(ds, "val", 2, sharp=0.3)
    top = pred[["p_short", "p_flat", "p_long"]].to_numpy()
    largest = top[top.argmax(axis=1) != 1].max()
    metrics = run_backtest(pred, ds.bars, ds.bars_per_year, threshold=0.99).metrics
    assert metrics["n_trades"] == 0
    assert metrics["no_trades_reason"] == (
        f"no long/short probability reached evaluation.threshold=0.99 on {len(pred)} rows "
        f"(largest seen: {largest:.3f}); lower it, e.g. "
        f"`evaluation.threshold={np.floor(largest * 100) / 100:.2f}`, if that is a level you "
        "would trade at")
    flat = pred.assign(p_short=0.1, p_flat=0.8, p_long=0.1)
    reason = run_backtest(flat, ds.bars, ds.bars_per_year, 0.45).metrics["no_trades_reason"]
    assert reason.startswith("the most probable class is 0 (flat) on all")
    assert "n_trades" in summary_table({"val": metrics, "test": metrics}, "t")
    assert format_value("n_trades", 0.0) == "0"  # never 0.0000


# ----------------------------------------------------------------- one-class labels


def test_one_class_training_labels_stop_before_fitting(short_phase1):
    ds = short_phase1
    evaluator = Evaluator(plots=False)
    evaluator.check_labels(ds)  # the real labels are fine
    meta = ds.meta.copy()
    meta.loc[meta["split"] == "train", "label"] = 0
    constant = type(ds)(X=ds.X, meta=meta, bars=ds.bars, instruments=ds.instruments,
                        info=ds.info)
    with pytest.raises(FactoryError, match=r"^synthetic: the \d+ training labels have one class "
                                           r"\(-1: 0.0%, 0: 100.0%, \+1: 0.0%\).*horizon="):
        evaluator.check_labels(constant)
    labels = np.r_[np.zeros(995), np.ones(5), -np.ones(300)].astype(int)
    assert "class 1 is 0.38%" in label_balance_problem(labels, 0.01, (-1, 0, 1))
    assert label_balance_problem(labels, 0.001, (-1, 0, 1)) is None


# ----------------------------------------------------------------- exposure


def test_positions_are_exactly_flat_after_an_exit():
    """Before: a running sum of +w/-w left weights of ~1e-20 after exits, and those bars
    counted as in the market (0.988 against 0.953 on one test split)."""
    rng = np.random.default_rng(0)
    close = 4800.0 + 0.25 * np.cumsum(rng.integers(-3, 4, 400))
    entry = np.arange(3, 380, 12)
    exit_ = entry + rng.integers(3, 12, len(entry))
    side = rng.choice([-1.0, 1.0], len(entry))
    price = close[entry] + 0.25
    held = np.zeros(len(close), bool)
    for a, b in zip(entry, exit_, strict=True):
        held[a:b + 1] = True
    old = np.zeros(len(close) + 1)
    np.add.at(old, entry, side / price)
    np.add.at(old, exit_ + 1, -side / price)
    assert (np.cumsum(old[:-1])[~held] != 0).sum() > 10  # the old weights' float residue
    r = bar_returns(close, entry, exit_, side, price, close[exit_], np.full(len(entry), 1e-4))
    assert (r[~held] == 0).all()
    frame = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                          "volume": 1.0},
                         index=pd.date_range("2024-01-02", periods=len(close), freq="5min",
                                             tz="UTC"))
    trades = pd.DataFrame({"entry_time": frame.index[entry], "exit_time": frame.index[exit_]})
    assert exposure(frame.index, trades) == held.mean()  # bars with a position open

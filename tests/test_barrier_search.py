"""Barrier search: training block only, deterministic for a seed, cached on disk."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.labeling import barrier_search as bs
from factory.labeling.triple_barrier import TripleBarrierLabeler

MES = Instrument("MES", tick_size=0.25, point_value=5.0, commission=0.62, slippage_ticks=1)
SETTINGS = bs.check_optimize({"n_trials": 8, "seed": 3})
KW = dict(symbol="MES", horizon=10, atr_period=14, cost_points=MES.round_trip_cost_points,
          vertical="zero", train_fraction=0.7, settings=SETTINGS)


def _bars(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 4000 + np.cumsum(rng.normal(0.05, 1.5, n))
    open_ = np.r_[close[0], close[:-1]] + rng.normal(0, 0.3, n)
    idx = pd.date_range("2024-01-02", periods=n, freq="5min", tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + rng.exponential(0.8, n),
                         "low": np.minimum(open_, close) - rng.exponential(0.8, n),
                         "close": close, "volume": 1.0}, index=idx)


def test_training_block_and_label_balance_by_hand():
    assert bs.training_bars(1000, 0.7, 20) == 686  # floor(0.7 * 980)
    assert bs.training_bars(10, 0.5, 20) == 0
    score, shares = bs.label_balance(np.array([-1, 0, 1, 1]), 0.1)
    assert shares == [0.25, 0.25, 0.5]
    assert score == pytest.approx(-(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5)) / math.log(3))
    assert bs.label_balance(np.array([-1, 0, 1]), 0.1)[0] == pytest.approx(1.0)
    assert bs.label_balance(np.array([-1, 0, 1, 1]), 0.3)[0] == pytest.approx(0.25 - 0.3)
    assert bs.label_balance(np.array([], int), 0.1)[0] == -1.0


def test_result_ignores_every_bar_after_the_training_block():
    bars = _bars()
    first = bs.search_barriers(bars, **KW)
    n_block = first["training_bars"]
    assert n_block == bs.training_bars(len(bars), 0.7, 10) == 2093
    poisoned = bars.copy()
    cols = ["open", "high", "low", "close"]
    poisoned.iloc[n_block:, poisoned.columns.get_indexer(cols)] *= 10.0  # adversarial future
    second = bs.search_barriers(poisoned, **KW)
    assert (second["upper_mult"], second["lower_mult"]) == (first["upper_mult"],
                                                            first["lower_mult"])
    assert second["score"] == first["score"] and second["key"] == first["key"]
    # ... while the training block itself does matter
    changed = bars.copy()
    changed.iloc[: n_block // 2, changed.columns.get_indexer(cols)] *= 1.5
    assert bs.search_barriers(changed, **KW)["key"] != first["key"]


def test_same_seed_same_result_and_feasible_balanced_shares():
    bars = _bars(seed=1)
    a, b = bs.search_barriers(bars, **KW), bs.search_barriers(bars, **KW)
    assert {k: a[k] for k in ("upper_mult", "lower_mult", "score")} == {
        k: b[k] for k in ("upper_mult", "lower_mult", "score")}
    assert min(a["shares_down_flat_up"]) >= SETTINGS["min_class_share"]
    assert 0.5 <= a["upper_mult"] <= 3.0 and 0.5 <= a["lower_mult"] <= 3.0
    assert round(a["upper_mult"] / 0.05, 6).is_integer()  # on the 0.05 grid


def test_second_call_reads_the_json_cache(tmp_path, monkeypatch):
    bars = _bars(seed=2)
    first = bs.search_barriers(bars, **KW, cache_dir=tmp_path)
    path = tmp_path / "barriers" / f"{first['key']}.json"
    assert not first["from_cache"] and path.is_file()
    assert json.loads(path.read_text())["upper_mult"] == first["upper_mult"]
    import optuna

    def no_search(*args, **kwargs):
        raise AssertionError("searched again instead of reading the cache")

    monkeypatch.setattr(optuna, "create_study", no_search)
    second = bs.search_barriers(bars, **KW, cache_dir=tmp_path)
    assert second["from_cache"]
    assert (second["upper_mult"], second["lower_mult"]) == (first["upper_mult"],
                                                            first["lower_mult"])
    other = {**KW, "train_fraction": 0.6}  # another key: must search (and here: raise)
    with pytest.raises(AssertionError, match="searched again"):
        bs.search_barriers(bars, **other, cache_dir=tmp_path)


def test_labeler_optimize_labels_with_the_searched_multipliers(tmp_path):
    bars = _bars(seed=4)
    lab = TripleBarrierLabeler(horizon=10, optimize={"n_trials": 8, "seed": 3},
                               cache_dir=str(tmp_path), train_fraction=0.7)
    out = lab.label(bars, MES)
    found = lab.searched["MES"]
    fixed = TripleBarrierLabeler(horizon=10, upper_mult=found["upper_mult"],
                                 lower_mult=found["lower_mult"]).label(bars, MES)
    pd.testing.assert_frame_equal(out, fixed)
    assert len(list((tmp_path / "barriers").glob("*.json"))) == 1


def test_too_short_training_block_is_one_clear_error():
    with pytest.raises(FactoryError, match=r"barrier search for MES: only \d+ training bars"):
        bs.search_barriers(_bars(150), **KW)


@pytest.mark.parametrize("bad", [{"n_trials": 0}, {"trials": 5}, {"min_class_share": 0.5},
                                 {"low": 2.0, "high": 1.0}, {"seed": "x"}])
def test_bad_optimize_config_names_the_key(bad):
    with pytest.raises(FactoryError, match=r"`labeling.optimize"):
        TripleBarrierLabeler(optimize=bad)


def test_train_fraction_out_of_range_names_the_key():
    with pytest.raises(FactoryError, match=r"`labeling.train_fraction` must be in \(0, 1\)"):
        TripleBarrierLabeler(optimize={}, train_fraction=1.0)

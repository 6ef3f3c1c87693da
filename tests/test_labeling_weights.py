"""Sample weights (uniqueness, return attribution, time decay) on hand-computed spans, and
Phase 1 applying the configured scheme per (symbol, split) block."""

from __future__ import annotations

import numpy as np
import pytest

from factory.errors import FactoryError
from factory.labeling.triple_barrier import TripleBarrierLabeler
from factory.labeling.weights import (
    average_uniqueness,
    return_attribution,
    sample_weights,
    time_decay,
)

# spans [0,2], [1,3], [4,4] over 5 bars: concurrency 1, 2, 2, 1, 1
ENTRY, EXIT = np.array([0, 1, 4]), np.array([2, 3, 4])
# bar log returns 0, .01, .02, -.01, .03
CLOSE = 100 * np.exp(np.cumsum([0.0, 0.01, 0.02, -0.01, 0.03]))


def test_average_uniqueness_hand_computed():
    np.testing.assert_allclose(average_uniqueness(ENTRY, EXIT, 5), [2 / 3, 2 / 3, 1.0])


def test_return_attribution_hand_computed():
    # r/c per bar: 0, .005, .01, -.01, .03 -> span sums .015, .005, .03 -> x 3/.05
    w = return_attribution(ENTRY, EXIT, CLOSE, 5)
    np.testing.assert_allclose(w, [0.9, 0.3, 1.8], rtol=1e-9)
    assert w.mean() == pytest.approx(1.0)


def test_return_attribution_signs_cancel_inside_a_span_and_flat_block_is_equal():
    # one label over bars 1..3 with returns +.01, +.02, -.03: net zero; the other one +.03
    w = return_attribution(np.array([1, 4]), np.array([3, 4]),
                           100 * np.exp(np.cumsum([0, 0.01, 0.02, -0.03, 0.03])), 5)
    np.testing.assert_allclose(w, [0.0, 2.0], atol=1e-9)
    np.testing.assert_array_equal(return_attribution(ENTRY, EXIT, np.full(5, 100.0), 5), 1.0)


@pytest.mark.parametrize(
    ("oldest", "expected"),
    [
        (1.0, [1, 1, 1, 1]),
        # uniqueness .5, 1, .5, 1 -> cumulative x = .5, 1.5, 2, 3 (total 3)
        (0.0, [1 / 6, 1 / 2, 2 / 3, 1]),  # slope 1/3, const 0
        (0.4, [0.5, 0.7, 0.8, 1.0]),  # slope .2, const .4
        (-0.5, [0, 0, 1 / 3, 1]),  # slope 2/3, const -1, clipped at 0
        (-1.0, [0, 0, 0, 1]),  # limit: only the newest keeps weight
    ],
)
def test_time_decay_hand_computed(oldest, expected):
    np.testing.assert_allclose(time_decay(np.array([0.5, 1, 0.5, 1]), oldest), expected,
                               atol=1e-12)


@pytest.mark.parametrize("bad", [1.5, -1.01])
def test_time_decay_out_of_range_names_the_key(bad):
    with pytest.raises(FactoryError, match=r"`labeling.time_decay` must be in \[-1, 1\]"):
        time_decay(np.ones(3), bad)
    with pytest.raises(FactoryError, match=r"`labeling.time_decay`"):
        TripleBarrierLabeler(time_decay=bad)


def test_sample_weights_every_kind_in_any_row_order():
    perm = np.array([2, 0, 1])  # rows not in time order
    e, x = ENTRY[perm], EXIT[perm]
    np.testing.assert_allclose(sample_weights("uniqueness", e, x, CLOSE, 5), [1, 2 / 3, 2 / 3])
    np.testing.assert_allclose(sample_weights("return_attribution", e, x, CLOSE, 5),
                               [1.8, 0.9, 0.3], rtol=1e-9)
    np.testing.assert_array_equal(sample_weights("none", e, x, CLOSE, 5), [1, 1, 1])
    # time order: u = 2/3, 2/3, 1 -> x = 2/3, 4/3, 7/3; oldest 0 -> d = x / (7/3)
    np.testing.assert_allclose(sample_weights("uniqueness_decay", e, x, CLOSE, 5, decay=0.0),
                               [1.0, 2 / 3 * 2 / 7, 2 / 3 * 4 / 7])
    np.testing.assert_allclose(sample_weights("uniqueness_decay", e, x, CLOSE, 5, decay=1.0),
                               [1, 2 / 3, 2 / 3])
    for kind in ("uniqueness", "return_attribution", "uniqueness_decay", "none"):
        assert len(sample_weights(kind, e[:0], x[:0], CLOSE, 5)) == 0


def test_unknown_weight_kind_names_the_key():
    with pytest.raises(FactoryError, match=r"`labeling.sample_weight` must be one of"):
        sample_weights("equal", ENTRY, EXIT, CLOSE, 5)
    with pytest.raises(FactoryError, match=r"`labeling.sample_weight` must be one of"):
        TripleBarrierLabeler(sample_weight="equal")


@pytest.mark.parametrize("kind", ["none", "return_attribution", "uniqueness_decay"])
def test_phase1_applies_the_configured_weights_per_block(make_cfg, kind):
    from factory.phase1 import load_or_build

    ds, _, _ = load_or_build(make_cfg(f"labeling.sample_weight={kind}", "labeling.time_decay=0.25",
                                      "cache=false"))
    meta, bars = ds.meta, ds.bars
    assert (meta.loc[meta["split"] == "gap", "weight"] == 0).all()
    for (sym, split), block in meta[meta["split"] != "gap"].groupby(["symbol", "split"]):
        expect = sample_weights(kind, block["bar_idx"].to_numpy() + 1,
                                block["exit_idx"].to_numpy(),
                                bars[sym]["close"].to_numpy(), len(bars[sym]),
                                decay=0.25)
        np.testing.assert_allclose(block["weight"].to_numpy(), expect, err_msg=f"{sym} {split}")
        if kind == "none":
            assert (block["weight"] == 1).all()
        elif kind == "return_attribution":
            assert block["weight"].mean() == pytest.approx(1.0)
        else:  # the newest row keeps its uniqueness, the oldest is decayed towards 0.25
            u = average_uniqueness(block["bar_idx"].to_numpy() + 1, block["exit_idx"].to_numpy(),
                                   len(bars[sym]))
            assert block["weight"].iloc[-1] == pytest.approx(u[-1])
            assert block["weight"].iloc[0] < 0.3 * u[0]

"""The 3-D and 4-D adapters on a real (tiny) Phase-1 dataset: exact windows, completed bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.adapters.multires import CHANNELS, MultiresAdapter, bar_channels
from factory.adapters.sequence import SequenceAdapter
from factory.adapters.windows import segment_position
from factory.data.resample import resample_bars
from factory.errors import FactoryError
from factory.phase1 import load_or_build

SEQ = 12


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from tests.conftest import compose_config

    cfg = compose_config(tmp_path_factory.mktemp("seq"), "features=transformer_raw")
    return load_or_build(cfg)[0]


def test_window_holds_exactly_bars_t_minus_len_plus_1_to_t(ds):
    adapter = SequenceAdapter(seq_len=SEQ, scaler="none").fit(ds, ds.rows("train"))
    meta = ds.meta
    for split in ("train", "val", "test"):
        x = adapter.transform(ds, ds.rows(split))
        rng = np.random.default_rng(0)
        for pos in rng.choice(len(x), 40, replace=False):
            row = x.rows[pos]
            window = x.batch(np.array([pos]))[0]
            sym, t = meta["symbol"].iat[row], meta["bar_idx"].iat[row]
            same = (meta["symbol"] == sym).to_numpy() & (meta["split"] == split).to_numpy()
            want = np.flatnonzero(same & meta["bar_idx"].between(t - SEQ + 1, t).to_numpy())
            assert meta["bar_idx"].to_numpy()[want].tolist() == list(range(t - SEQ + 1, t + 1))
            np.testing.assert_array_equal(window, ds.X.to_numpy(np.float32)[want])


def test_first_rows_of_each_segment_are_dropped_and_counted(ds):
    adapter = SequenceAdapter(seq_len=SEQ).fit(ds, ds.rows("train"))
    position = segment_position(ds.meta)
    for split in ("train", "val", "test"):
        rows = ds.rows(split)
        x = adapter.transform(ds, rows)
        starts = int((position[rows] == 0).sum())  # one per symbol and segment
        assert starts >= ds.meta["symbol"].nunique()
        assert len(rows) - len(x) == starts * (SEQ - 1) == adapter.dropped_[split]
        assert (position[x.rows] >= SEQ - 1).all()


def test_windows_never_cross_symbol_split_or_gap(ds):
    adapter = SequenceAdapter(seq_len=SEQ).fit(ds, ds.rows("train"))
    x = adapter.transform(ds, np.flatnonzero(ds.meta["split"] != "gap"))
    grid = x.ends[:, None] + np.arange(1 - SEQ, 1)
    for column in ("symbol", "split"):
        values = ds.meta[column].to_numpy()[grid]
        assert (values == values[:, -1:]).all(), column
    assert np.all(np.diff(ds.meta["bar_idx"].to_numpy()[grid], axis=1) == 1)


def test_scaling_fitted_on_training_windows_only(ds):
    adapter = SequenceAdapter(seq_len=SEQ, scaler="standard").fit(ds, ds.rows("train"))
    train_rows = adapter.transform(ds, ds.rows("train")).rows
    X = ds.X.to_numpy(np.float64)[train_rows]
    np.testing.assert_allclose(adapter.center_, X.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_multires_rows_come_only_from_completed_bars(ds):
    """Recompute each timeframe's channels from bars truncated at the decision bar: the
    window must equal the last seq_len rows (any forming higher-timeframe bar excluded)."""
    adapter = MultiresAdapter(timeframes=["5min", "15min", "1h"], seq_len=6, clip=None)
    adapter.fit(ds, ds.rows("train"))
    x = adapter.transform(ds, ds.rows("val"))
    raw = (x.batch(np.arange(len(x))) * adapter.scale_[None, :, None, :]
           + adapter.center_[None, :, None, :])
    rng = np.random.default_rng(1)
    checked_partial = 0
    for pos in rng.choice(len(x), 25, replace=False):
        row = x.rows[pos]
        sym, t = ds.meta["symbol"].iat[row], ds.meta["bar_idx"].iat[row]
        bars = ds.bars[sym].iloc[: t + 1]  # everything known at the decision bar's close
        decision = bars.index[-1] + pd.Timedelta("5min")
        for k, tf in enumerate(adapter.timeframes):
            tf_bars = resample_bars(bars, tf)
            complete = tf_bars.index + pd.Timedelta(tf) <= decision
            checked_partial += int(not complete[-1])
            want = bar_channels(tf_bars[complete])[-6:]
            np.testing.assert_allclose(raw[pos, k], want, rtol=1e-4, atol=1e-5)
    assert checked_partial > 0  # the forming 1h bar really was there and was excluded


def test_multires_shape_and_state_roundtrip(ds):
    adapter = MultiresAdapter(seq_len=8).fit(ds, ds.rows("train"))
    x = adapter.transform(ds, ds.rows("test"))
    assert x.batch(np.arange(5)).shape == (5, 3, 8, len(CHANNELS))
    again = MultiresAdapter.from_state(adapter.state())
    np.testing.assert_array_equal(again.transform(ds, ds.rows("test")).batch(np.arange(5)),
                                  x.batch(np.arange(5)))


def test_inputs_are_lazy_views_of_the_dataset_matrix(ds):
    x = SequenceAdapter(seq_len=SEQ).fit(ds, ds.rows("train")).transform(ds, ds.rows("train"))
    assert np.shares_memory(x.X, ds.matrix())
    assert x.ends.nbytes + x.y.nbytes + x.weight.nbytes < ds.matrix().nbytes


def test_permutation_keeps_the_dataset_untouched(ds):
    x = SequenceAdapter(seq_len=SEQ).fit(ds, ds.rows("train")).transform(ds, ds.rows("val"))
    before = ds.matrix().copy()
    shuffled = x.permute_feature(0, np.random.default_rng(0))
    np.testing.assert_array_equal(ds.matrix(), before)
    a, b = x.batch(np.arange(50)), shuffled.batch(np.arange(50))
    np.testing.assert_array_equal(a[..., 1:], b[..., 1:])
    assert not np.array_equal(a[..., 0], b[..., 0])


def test_bad_seq_len_is_a_clear_error(ds):
    with pytest.raises(FactoryError, match="adapter.seq_len"):
        SequenceAdapter(seq_len=0)
    with pytest.raises(FactoryError, match="adapter.seq_len"):
        SequenceAdapter(seq_len=10_000).fit(ds, ds.rows("train"))

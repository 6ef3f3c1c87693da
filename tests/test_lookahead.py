"""Leakage: every registered feature group at bar t is a function of bars <= t only.

Lookahead invariance: computing on bars[:t+1] and on all bars gives identical values at
every row <= t. Adversarial: a huge spike appended after t changes nothing at or before t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.data.synthetic import SyntheticSource
from factory.features.pipeline import FeaturePipeline
from factory.features.registry import catalog

CUTS = [150, 777, 2001]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return SyntheticSource(days=14, seed=3).load().bars["MES"].iloc[:2500]


def _group_frame(bars: pd.DataFrame, group: str) -> pd.DataFrame:
    return FeaturePipeline({group: {}}).transform(bars)


@pytest.mark.parametrize("group", sorted(catalog()))
@pytest.mark.parametrize("t", CUTS)
def test_lookahead_invariance(bars, group, t):
    full = _group_frame(bars, group)
    cut = _group_frame(bars.iloc[: t + 1], group)
    warm = FeaturePipeline({group: {}}).warmup
    np.testing.assert_array_equal(cut.iloc[warm:].to_numpy(), full.iloc[warm : t + 1].to_numpy())


@pytest.mark.parametrize("t", CUTS)
def test_spike_after_t_changes_nothing_up_to_t(bars, t):
    pipe = FeaturePipeline({g: {} for g in catalog()})
    before = pipe.transform(bars)
    spiked = bars.copy()
    spiked.iloc[t + 1 :, :4] *= 50.0  # a 50x price spike from t+1 on
    spiked.iloc[t + 1 :, 4] *= 1000.0
    after = pipe.transform(spiked)
    np.testing.assert_array_equal(after.iloc[: t + 1].to_numpy(), before.iloc[: t + 1].to_numpy())
    assert not np.allclose(after.iloc[t + 1 :].to_numpy(), before.iloc[t + 1 :].to_numpy(),
                           equal_nan=True)


def test_warmup_rows_are_exactly_the_undefined_ones(bars):
    pipe = FeaturePipeline({g: {} for g in catalog()})
    frame = pipe.transform(bars)
    defined = np.isfinite(frame.to_numpy()).all(axis=1)
    assert not defined[pipe.warmup - 1] and defined[pipe.warmup:].all()

"""Bad input reaches the user as one clean line naming what is wrong and the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from factory.errors import FactoryError
from factory.experiment import run
from tests.conftest import ROOT


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", "tracker=none", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_bad_horizon_is_one_clean_line():
    out = _cli("horizon=-5")
    assert out.returncode == 2
    expected = "error: `horizon` must be a positive int, got -5 (try `horizon=20`)"
    assert out.stderr.strip() == expected
    assert "Traceback" not in out.stderr + out.stdout


def test_malformed_csv_is_one_clean_line(tmp_path):
    bad = tmp_path / "bars.csv"
    bad.write_text("timestamp,open,high,low,clse,volume\n2024-01-02T00:00:00Z,1,2,0.5,1.5,10\n")
    out = _cli("data=csv", f"data.path={bad}")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0]
    assert "missing column 'close'" in lines[0] and "data.column_map={clse: close}" in lines[0]


def test_unknown_model_lists_the_valid_ones():
    out = _cli("model=xgbost")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "Could not find 'model/xgbost'" in out.stderr
    for name in ("xgboost", "lightgbm", "catboost", "random_forest", "logistic", "svm"):
        assert f"\t{name}" in out.stderr


@pytest.mark.parametrize("bad", ["0", "-5", "2.5", "abc"])
def test_horizon_validation(make_cfg, bad):
    with pytest.raises(FactoryError, match=r"`horizon` must be a positive int"):
        run(make_cfg(f"horizon={bad}"))


def test_dataset_too_short_names_what_each_stage_needs_and_the_fix(make_cfg):
    # (21 days with a 900-bar embargo used to leave validation empty: the embargo came out of
    # validation alone; val and test are now equal after the gaps, tests/test_traps.py)
    with pytest.raises(FactoryError, match=r"synthetic \[MES\]: too little data for "
                                           r"features=core and the cv split: .* bars of 5min.*"
                                           r"2 gap\(s\) of 2100 rows.*Fix: add data"):
        run(make_cfg("data.days=21", "cv.embargo_bars=2100"))


def test_csv_without_path(make_cfg):
    with pytest.raises(FactoryError, match=r"`data.path` \(e.g. python run.py data=csv"):
        run(make_cfg("data=csv"))


def test_bad_objective(make_cfg):
    with pytest.raises(FactoryError, match=r"`objective` must look like val.<metric>"):
        run(make_cfg("objective=sharpe"))
    with pytest.raises(FactoryError, match=r"names no metric; available: \["):
        run(make_cfg("objective=val.nope", "model.n_estimators=5"))


def test_user_csv_trains_end_to_end(make_cfg, tmp_path):
    """A user's own OHLCV file (naive timestamps + timezone) through data=csv."""
    from factory.data.synthetic import SyntheticSource

    bars = SyntheticSource(days=21, seed=5).load().bars["MGC"]
    frame = bars.tz_convert("America/Chicago").tz_localize(None).reset_index()
    path = tmp_path / "mgc.csv"
    frame.to_csv(path, index=False)
    objective = run(make_cfg("data=csv", f"data.path={path}", "data.timezone=America/Chicago",
                             "model.n_estimators=20"))
    assert 0 <= objective <= 1

"""Tearsheet metrics against hand computations, the page's content, and a real browser.

The browser test renders ``tearsheet.html`` in headless Chromium from Debian's packages
(``apt-get install chromium``; .ci/run installs it) and checks the screenshot shows the
charts: the equity line's and the underwater fill's colours are there in quantity. Without
Chromium it is skipped with the reason, never silently passed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from factory.reports import Tearsheet
from factory.reports.metrics import (
    activity_stats,
    daily_returns,
    daily_stats,
    longest_drawdown_days,
    trade_stats,
)
from factory.simulation import Simulator
from tests.test_sim_engine import INST, TF, _walk

DAYS = pd.date_range("2024-03-04", periods=4, freq="D", tz="UTC")


def test_daily_statistics_by_hand():
    r = pd.Series([0.10, -0.05, 0.02, -0.03], index=DAYS)
    m = daily_stats(r, initial=100.0, periods=252)
    total = 1.10 * 0.95 * 1.02 * 0.97 - 1
    assert m["total_return"] == pytest.approx(total)
    assert m["cagr"] == pytest.approx((1 + total) ** (252 / 4) - 1)
    mean, std = 0.01, np.sqrt(((0.09 ** 2) + (0.06 ** 2) + (0.01 ** 2) + (0.04 ** 2)) / 3)
    assert m["volatility"] == pytest.approx(std * np.sqrt(252))
    assert m["sharpe"] == pytest.approx(mean / std * np.sqrt(252))
    downside = np.sqrt((0.05 ** 2 + 0.03 ** 2) / 4)
    assert m["sortino"] == pytest.approx(mean / downside * np.sqrt(252))
    # equity 110, 104.5, 106.59, 103.3923: the peak is 110
    assert m["max_drawdown"] == pytest.approx(103.3923 / 110 - 1)
    assert m["max_drawdown_days"] == 3  # under water from day 2 to day 4
    assert m["calmar"] == pytest.approx(m["cagr"] / abs(103.3923 / 110 - 1))
    # historical VaR: 5% quantile of [-0.05, -0.03, 0.02, 0.10], linear: -0.05 + 0.15 x 0.02
    assert m["var_95"] == pytest.approx(-0.047)
    assert m["cvar_95"] == pytest.approx(-0.05)  # the only return below it
    assert m["var_99"] == pytest.approx(-0.05 + 0.03 * 0.02)
    assert m["cvar_99"] == pytest.approx(-0.05)
    assert m["win_days"] == 0.5
    assert m["profit_factor_days"] == pytest.approx(0.12 / 0.08)
    assert m["payoff_days"] == pytest.approx(0.06 / 0.04)
    assert (m["best_day"], m["worst_day"]) == (0.10, -0.05)


def test_first_day_loss_counts_against_the_initial_capital():
    """quantstats' phantom baseline: a loss on day one is a drawdown."""
    r = pd.Series([-0.02, 0.01, 0.015], index=pd.date_range("2024-03-04", periods=3,
                                                            tz="UTC"))
    m = daily_stats(r, initial=1000.0)
    assert m["max_drawdown"] == pytest.approx(-0.02)
    assert m["max_drawdown_days"] == 2  # days 1-2 under water, recovered on day 3


def test_drawdown_duration_counts_calendar_days():
    idx = pd.DatetimeIndex(["2024-03-01", "2024-03-04", "2024-03-05", "2024-03-06",
                            "2024-03-07"], tz="UTC")  # Friday, then Monday-Thursday
    dd = pd.Series([0.0, -0.01, -0.02, 0.0, -0.01], index=idx)
    assert longest_drawdown_days(dd) == 2  # Mon-Tue (the Thursday one is 1 day)
    dd2 = pd.Series([-0.01, -0.01, -0.02, 0.0, 0.0], index=idx)
    assert longest_drawdown_days(dd2) == 5  # Fri 1st to Tue 5th: (4 days) + 1


def test_daily_resampling_by_session():
    """Session-end equity, labelled by the trading date; the first return is on the initial."""
    s1 = pd.date_range("2024-03-03 23:00", "2024-03-04 21:55", freq=TF, tz="UTC")  # Monday's
    s2 = pd.date_range("2024-03-04 23:00", "2024-03-05 01:00", freq=TF, tz="UTC")  # partial
    eq = pd.Series(np.r_[np.linspace(100, 105, len(s1)), np.linspace(99, 107.1, len(s2))],
                   index=s1.append(s2))
    r = daily_returns(eq, initial=100.0, gap_minutes=60, timeframe=TF, session_minutes=1380)
    assert list(r.index.strftime("%Y-%m-%d")) == ["2024-03-04", "2024-03-05"]
    np.testing.assert_allclose(r.to_numpy(), [0.05, 107.1 / 105 - 1])


def test_trade_and_activity_statistics_by_hand():
    trades = pd.DataFrame({"symbol": ["MES"] * 5, "net_pnl": [10.0, -5, 20, -10, 0],
                           "bars_held": [1, 2, 3, 4, 5], "qty": [1.0, 1, 2, 1, 1],
                           "entry_fill": [100.0] * 5, "exit_fill": [101.0] * 5,
                           "commission": [1.0] * 5, "slippage": [0.5] * 5})
    t = trade_stats(trades)
    assert t["trades"] == 5 and t["win_rate"] == 0.4
    assert t["profit_factor"] == 2.0 and t["payoff_ratio"] == 2.0
    assert t["expectancy"] == 3.0 and t["avg_bars_held"] == 3.0
    equity = pd.DataFrame({"equity": [1000.0, 1000, 1000, 1000],
                           "gross_notional": [0.0, 500, 500, 0]})
    a = activity_stats(equity, trades, {"MES": 5.0}, days=126, periods=252)
    assert a["exposure"] == 0.5
    traded = 6 * 5.0 * 201.0  # 6 contracts, both sides
    assert a["turnover"] == pytest.approx(traded / 1000 / 0.5)
    assert a["costs"] == 7.5 and a["costs_share_of_gross"] == pytest.approx(7.5 / (15 + 7.5))


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    bars = {"MES": _walk(2400, seed=11, sessions=8),
            "MGC": _walk(2400, seed=12, sessions=8, price=2000.0)}
    rng = np.random.default_rng(0)
    dec = {s: pd.DataFrame({"signal": rng.choice([-1, 0, 0, 1], len(f)), "width_up": 1.0,
                            "width_dn": 1.0}, index=f.index) for s, f in bars.items()}
    sim = Simulator(horizon=12, latency=1, sizing="vol_target", size={"vol_span": 50},
                    risk={"daily_loss": 0.01})
    res, _ = sim.run(bars, dec, INST, TF)
    regimes = pd.concat([pd.DataFrame({"timestamp": f.index, "symbol": s,
                                       "vol_regime": (np.arange(len(f)) // 300) % 3})
                         for s, f in bars.items()])
    out = tmp_path_factory.mktemp("sheet")
    m = Tearsheet(title="Test tearsheet").write(
        res, out, {s: i.point_value for s, i in INST.items()}, TF, regimes=regimes)
    return out, m, res


def test_tearsheet_files_and_self_contained_page(sheet):
    out, m, res = sheet
    for name in ("tearsheet.html", "sim_metrics.json", "equity.png", "rolling_sharpe.png",
                 "exposure.png", "trades.png", "long_short.png", "symbols.png", "monthly.png",
                 "regimes.png"):
        assert (out / name).stat().st_size > 500, name
    page = (out / "tearsheet.html").read_text()
    srcs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert len(srcs) >= 7 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    for text in ("CAGR", "Sortino", "Calmar", "VaR 99%", "CVaR 95%", "Profit factor",
                 "Payoff ratio", "Expectancy", "Turnover", "Longest drawdown", "Monthly returns",
                 "vol_regime = 2", "daily_loss"):
        assert text in page, text
    saved = json.loads((out / "sim_metrics.json").read_text())
    assert saved["trades"] == len(res.trades) > 50
    assert saved["net_pnl"] == pytest.approx(res.equity["equity"].iloc[-1] - 100_000)
    assert saved["limit_events"].get("daily_loss", 0) > 0


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _near(img: np.ndarray, hex_color: str, alpha: float = 1.0, tol: int = 24) -> int:
    """Pixels within ``tol`` of the colour (painted with ``alpha`` over white)."""
    rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]) * alpha + 255 * (1 - alpha)
    return int((np.abs(img[..., :3].astype(float) - rgb).sum(axis=-1) < tol).sum())


def test_tearsheet_renders_in_headless_chromium(sheet, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the tearsheet was "
                    "not rendered in a browser")
    from PIL import Image

    from factory.reports.charts import COLORS, UNDERWATER_ALPHA

    out, _, _ = sheet
    shot = tmp_path / "shot.png"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400",
           f"--screenshot={shot}", (out / "tearsheet.html").as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (2400, 1280)
    background = np.array([241, 245, 249])  # the page's --bg
    plain = (np.abs(img.astype(int) - background).sum(-1) < 6) | (img.min(-1) > 250)
    assert plain.mean() < 0.9, "the screenshot is (nearly) blank"
    assert img.std() > 20
    # the charts are drawn: the equity line's blue and the underwater red, in quantity
    assert _near(img, COLORS["equity"]) > 600  # the equity line (nothing else is this blue)
    assert _near(img, COLORS["underwater"], UNDERWATER_ALPHA) > 2000  # the underwater area

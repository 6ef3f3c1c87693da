"""Acceptance of issue 15 (slow): the whole flow through ``run.py``, from an empty cache.

1. Per-instrument xgboost bundles on the embedded futures8 universe, one job per symbol
   (``-m data.symbols=ES,NQ,GC,CL``), and the IBS rule the same way.
2. ``task=portfolio`` with ``portfolio.sizing=erc`` and a volatility target: the report's
   table shows each instrument, the equal-weight book, the rule and the optimised portfolio
   on the test period.
3. The same flow on a directory of per-symbol CSV files (``data=csv data.path='<dir>/*_bt.csv'``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
FAST = ["tracker=none", "evaluation.plots=false", "model.n_estimators=60"]


def python(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run([sys.executable, "run.py", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout + done.stderr


def per_instrument(tmp: Path, name: str, symbols: str, data: list[str], model: list[str]
                   ) -> list[str]:
    """One job per symbol; returns the job directories in symbol order of the sweep."""
    sweep = tmp / name
    python("-m", *data, f"data.symbols={symbols}", *model, f"hydra.sweep.dir={sweep}",
           f"paths.cache_dir={tmp / 'cache'}", "tracker=none", "evaluation.plots=false")
    jobs = sorted(p for p in sweep.iterdir() if (p / "bundle" / "manifest.json").is_file())
    names = [json.loads((j / "bundle" / "manifest.json").read_text())["name"] for j in jobs]
    expected = [s for s in symbols.split(",")]
    assert [j.name.rsplit("_", 1)[-1] for j in jobs] == expected  # 0_xgboost_ES, ...
    assert [n.rsplit("_", 1)[-1] for n in names] == expected      # xgboost_h20_ES, ...
    return [str(j) for j in jobs]


def book(tmp: Path, models: list[str], rules: list[str], symbols: list[str]) -> Path:
    out = tmp / "portfolio_run"
    python("task=portfolio", f"portfolio.bundles=[{','.join(models)}]",
           f"portfolio.baseline=[{','.join(rules)}]", "portfolio.sizing=erc",
           "portfolio.target_vol=0.1", "portfolio.optimize.n_trials=8",
           f"registry.path={tmp / 'registry'}", f"hydra.run.dir={out}")
    report = out / "portfolio"
    table = pd.read_csv(report / "comparison.csv", index_col=0)
    assert list(table.index) == [*[f"{s} alone" for s in sorted(symbols)], "equal weight",
                                 "rule", "configured", "portfolio"]
    assert table["trades"].min() > 0
    metrics = json.loads((report / "portfolio_metrics.json").read_text())
    assert set(metrics["risk_contributions"]["realised"]) == {*symbols, "total"}
    assert metrics["periods"]["val"][1] <= metrics["periods"]["test"][0]
    assert "Books on the test period" in (report / "tearsheet.html").read_text()
    return report


def test_embedded_universe(tmp_path):
    data = ["data.universe=futures8", "data.days=90"]
    symbols = ["ES", "NQ", "GC", "CL"]
    models = per_instrument(tmp_path, "xgb", ",".join(symbols), data,
                            ["model=xgboost", *FAST[2:]])
    rules = per_instrument(tmp_path, "rule", ",".join(symbols), data, ["model=ibs_rule"])
    report = book(tmp_path, models, rules, symbols)
    corr = pd.read_csv(report / "correlation.csv", index_col=0)
    assert corr.loc["ES", "NQ"] > 0.6 > abs(corr.loc["ES", "GC"])  # the universe's structure


def test_per_symbol_csv_files(tmp_path):
    from omegaconf import OmegaConf

    from factory.config import build

    node = OmegaConf.load(ROOT / "conf" / "data" / "synthetic.yaml")
    node.pop("defaults")
    node.instruments = OmegaConf.load(ROOT / "conf" / "data" / "instruments" / "cme.yaml")
    node.update(seed=7, days=90, universe="futures8", symbols=["ES", "NQ"])
    bars = build(node).load()
    folder = tmp_path / "bars"
    folder.mkdir()
    for sym, frame in bars.bars.items():
        frame.tz_convert(None).reset_index().to_csv(folder / f"{sym}_bt.csv", index=False)
    data = ["data=csv", f"data.path='{folder}/*_bt.csv'", "data.timezone=UTC"]
    models = per_instrument(tmp_path, "xgb", "ES,NQ", data, ["model=xgboost", *FAST[2:]])
    rules = per_instrument(tmp_path, "rule", "ES,NQ", data, ["model=ibs_rule"])
    book(tmp_path, models, rules, ["ES", "NQ"])

"""task=portfolio end to end on tiny data: rule bundles of two futures8 instruments (the rule
fits nothing, so the bundles cost only Phase 1), then the portfolio run through the task:
the report's files and figures, the decisions equal to the bundles' own test predictions,
portfolio.yaml run again and promoted, registry queries, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from factory.errors import FactoryError
from factory.experiment import run
from factory.portfolio.sources import Loader, resolve
from factory.registry import Registry
from factory.tasks import portfolio as task
from tests.conftest import compose_config

SYMBOLS = ("ES", "NQ")
RULE = ["model=ibs_rule", "features=rule_inputs", "data.universe=futures8", "data.days=30"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Per symbol: a 'model' (the rule without its volume gate) and the rule baseline."""
    root = tmp_path_factory.mktemp("book")
    out = {"model": [], "rule": []}
    for sym in SYMBOLS:
        for kind, extra in (("model", ["model.volume_min=0.0", "model.ibs_low=0.3",
                                       "model.ibs_high=0.7"]), ("rule", [])):
            cfg = compose_config(root / f"{kind}_{sym}", *RULE, f"data.symbols=[{sym}]", *extra)
            run(cfg)
            out[kind].append(str(root / f"{kind}_{sym}" / "run"))
    return root, out


def portfolio_cfg(root, name, *overrides):
    return compose_config(root / name, "task=portfolio", f"registry.path={root / 'registry'}",
                          "portfolio.optimize.n_trials=3", "portfolio.covariance.min_periods=30",
                          *overrides, tiny=False)


@pytest.fixture(scope="module")
def book(bundles):
    root, b = bundles
    cfg = portfolio_cfg(root, "pf", f"portfolio.bundles=[{','.join(b['model'])}]",
                        f"portfolio.baseline=[{','.join(b['rule'])}]", "portfolio.sizing=erc",
                        "portfolio.target_vol=0.1", "portfolio.promote=true", "reason=first book")
    value = task.run(cfg)
    return cfg, root / "pf" / "run" / "portfolio", value


def test_the_report(book):
    cfg, out, value = book
    metrics = json.loads((out / "portfolio_metrics.json").read_text())
    comparison = pd.read_csv(out / "comparison.csv", index_col=0)
    assert list(comparison.index) == ["ES alone", "NQ alone", "equal weight", "rule",
                                      "configured", "portfolio"]
    assert value == pytest.approx(metrics["validation"]["portfolio"]["sharpe"])
    sim = json.loads((out / "sim_metrics.json").read_text())  # the tearsheet: the test period
    assert comparison.loc["portfolio", "sharpe"] == pytest.approx(sim["sharpe"])
    assert sim["start"] >= metrics["periods"]["test"][0]
    assert metrics["periods"]["val"][1] <= metrics["periods"]["test"][0]
    rc = pd.read_csv(out / "risk_contributions.csv", index_col=0)
    assert list(rc.index) == [*SYMBOLS, "total"]
    assert rc.loc["total", "realised"] == pytest.approx(sim["volatility"], rel=1e-9)
    corr = pd.read_csv(out / "correlation.csv", index_col=0)
    assert corr.loc["ES", "NQ"] > 0.6 and corr.loc["ES", "ES"] == pytest.approx(1.0)
    pnl = pd.read_csv(out / "pnl_contribution.csv", index_col=0)
    assert pnl["net P&L"].sum() == pytest.approx(sim["net_pnl"], rel=1e-9)
    page = (out / "tearsheet.html").read_text()
    for section in ("Books on the test period", "Correlation of instrument returns",
                    "Risk contribution per instrument", "P&amp;L contribution", "Equity"):
        assert section in page
    assert len(pd.read_csv(out / "trials.csv")) == 3


def test_decisions_are_the_bundles_own_test_predictions(bundles):
    root, b = bundles
    side = Loader(root / "registry").side([b["model"][0]], "bundles")
    test = pd.read_parquet(f"{b['model'][0]}/bundle/predictions_test.parquet")
    mine = side.decisions["ES"].reindex(pd.DatetimeIndex(test["timestamp"]))
    for col in ("p_short", "p_flat", "p_long"):
        np.testing.assert_array_equal(mine[col].to_numpy(), test[col].to_numpy())
    assert side.test_from["ES"] == test["timestamp"].min()
    assert side.unseen_from["ES"] < side.test_from["ES"]


def test_portfolio_yaml_is_promoted(book, bundles):
    cfg, out, _ = book
    root, _ = bundles
    saved = yaml.safe_load((out / "portfolio.yaml").read_text())
    reg = Registry(root / "registry" / "portfolios")
    assert reg.names() == [saved["name"]] and reg.live(saved["name"]) == 1
    assert (reg.path(saved["name"]) / "portfolio.yaml").read_text() == \
        (out / "portfolio.yaml").read_text()
    assert reg.history(saved["name"])[0]["why"] == "first book"
    assert saved["params"]["sizing"] == "erc" and set(saved["test"]) >= {"sharpe", "volatility"}


@pytest.mark.slow
def test_a_saved_portfolio_runs_again_the_same(book, bundles):
    cfg, out, _ = book
    root, _ = bundles
    saved = yaml.safe_load((out / "portfolio.yaml").read_text())
    again = portfolio_cfg(root, "again", f"portfolio.load=registry:{saved['name']}")
    task.run(again)
    redo = yaml.safe_load((root / "again" / "run" / "portfolio" / "portfolio.yaml").read_text())
    assert redo["params"] == saved["params"] and redo["test"] == saved["test"]
    assert [b["ref"] for b in redo["bundles"]] == [b["ref"] for b in saved["bundles"]]


def test_registry_queries_and_refusals(bundles):
    root, b = bundles
    reg = Registry(root / "registry")
    for path in b["model"]:
        name = json.loads((root / path / "bundle" / "manifest.json").read_text())["name"]
        reg.promote(name, root / path / "bundle", "for the book")
    # (the test config names every run `test`, so the bundles are test_h20_<symbol>)
    found = resolve(["registry:test_h20_*"], root / "registry")
    assert [ref for ref, _ in found] == ["registry:test_h20_ES", "registry:test_h20_NQ"]
    assert resolve(["registry:test_h20_ES@1"], root / "registry")[0][1] == \
        reg.path("test_h20_ES", 1)
    jobs = resolve([f"{root}/model_*/run"], root / "registry")  # a glob of run directories
    assert [str(path) for _, path in jobs] == [f"{m}/bundle" for m in b["model"]]
    with pytest.raises(FactoryError, match="matches no run or bundle"):
        resolve([f"{root}/nothing_*"], root / "registry")
    with pytest.raises(FactoryError, match="no live registry name matches"):
        resolve(["registry:lstm_*"], root / "registry")
    with pytest.raises(FactoryError, match="is not a bundle"):
        resolve([str(root)], root / "registry")
    with pytest.raises(FactoryError, match="ES is traded by two bundles"):
        Loader(root / "registry").side([b["model"][0], b["rule"][0]], "bundles")
    with pytest.raises(FactoryError, match="portfolio.optimize.search.*not a portfolio"):
        task.run(portfolio_cfg(root, "bad", f"portfolio.bundles=[{b['model'][0]}]",
                               "+portfolio.optimize.search.kelly='interval(0,1)'"))
    with pytest.raises(FactoryError, match="needs reason"):
        task.run(portfolio_cfg(root, "bad", "portfolio.promote=true"))


def test_run_directories_name_a_single_symbol():
    from factory.config import run_name

    assert run_name("xgboost", "none", "train", "ES") == "xgboost_ES"  # -m data.symbols=ES,NQ
    assert run_name("xgboost", "none", "train", ["NQ"]) == "xgboost_NQ"
    assert run_name("xgboost", "none", "train", ["ES", "NQ"]) == "xgboost"
    assert run_name("xgboost", "none", "train", None) == "xgboost"
    assert run_name("xgboost", "stacking", "train", "ES") == "stacking_ES"
    assert run_name("xgboost", "none", "portfolio", None) == "portfolio"

"""Zero-shot foundation forecasters: barrier geometry against closed forms, the context
adapter's windows, and tiny random Chronos-Bolt / TimesFM models built with the real
classes, saved as safetensors and loaded through the same code as released weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from factory.adapters.context import ContextAdapter
from factory.data.bars import Instrument
from factory.dataset import Dataset
from factory.errors import FactoryError
from factory.models.artifacts import load_model, save_model
from factory.models.foundation import geometry
from factory.models.foundation.chronos_bolt import ChronosBoltModel
from factory.models.foundation.timesfm import TimesFMModel, definition_from_shapes

LEVELS = np.arange(1, 10) / 10
Z = norm.ppf(LEVELS)
HORIZON = 6


def gaussian_quantiles(mu: float, sigma: float, horizon: int, n: int = 1) -> np.ndarray:
    """Quantiles of Brownian motion with drift mu and volatility sigma per step."""
    k = np.arange(1, horizon + 1)[:, None]
    return np.broadcast_to(mu * k + sigma * np.sqrt(k) * Z, (n, horizon, len(Z))).copy()


def first_passage_one_sided(u: float, mu: float, sigma: float, t: float) -> float:
    """P(max_{s <= t} mu s + sigma W_s >= u), the reflection-principle formula with drift."""
    sd = sigma * np.sqrt(t)
    reflected = np.exp(2 * mu * u / sigma**2) * norm.cdf((-u - mu * t) / sd)
    return norm.cdf((mu * t - u) / sd) + reflected


# ---------------------------------------------------------------------------- geometry
def test_one_sided_first_passage_matches_reflection_formula():
    mu, sigma, h, u = 2e-4, 2e-3, 20, 8e-3
    p = geometry.barrier_probabilities(gaussian_quantiles(mu, sigma, h), LEVELS, [np.expm1(u)],
                                       [0.99], [0.0], n_paths=20000)
    expected = first_passage_one_sided(u, mu, sigma, h)
    assert p[0, 2] == pytest.approx(expected, abs=0.01)
    assert p[0, 0] == 0.0  # the lower barrier (-99%) is out of reach
    # checking closes only misses touches between bars: strictly fewer
    disc = geometry.barrier_probabilities(gaussian_quantiles(mu, sigma, h), LEVELS,
                                          [np.expm1(u)], [0.99], [0.0], n_paths=20000,
                                          monitoring="discrete")
    assert disc[0, 2] < expected - 0.03


def test_two_sided_exit_matches_scale_function():
    """Long horizon: P(up before down) -> (1 - e^{a d}) / (e^{-a u} - e^{a d}), a = 2 mu/s^2."""
    mu, sigma, u, d = 3e-4, 2e-3, 4e-3, 3e-3
    p = geometry.barrier_probabilities(gaussian_quantiles(mu, sigma, 80), LEVELS,
                                       [np.expm1(u)], [-np.expm1(-d)], [0.0], n_paths=20000)
    a = 2 * mu / sigma**2
    expected = (1 - np.exp(a * d)) / (np.exp(-a * u) - np.exp(a * d))
    assert p[0, 2] == pytest.approx(expected, abs=0.01)
    assert p[0, 0] == pytest.approx(1 - expected, abs=0.01)
    assert p[0, 1] < 1e-6  # 80 steps: the exit is certain


def test_symmetric_forecast_gives_equal_sides_and_costs_gate_touches():
    q = gaussian_quantiles(0.0, 2e-3, 10, n=2)
    up, dn = np.expm1(5e-3), -np.expm1(-5e-3)  # symmetric in log space
    p = geometry.barrier_probabilities(q, LEVELS, [up, up], [dn, dn], [0.0, 0.0])
    np.testing.assert_allclose(p[:, 0], p[:, 2], rtol=1e-12)
    assert 0.2 < p[0, 2] < 0.5
    # a long touch at +0.4% does not clear a 0.5% cost (a label 0), a short one at -0.6% does
    near, far = np.expm1(4e-3), -np.expm1(-6e-3)
    free = geometry.barrier_probabilities(q, LEVELS, [near, near], [far, far], [0.0, 0.0])
    gated = geometry.barrier_probabilities(q, LEVELS, [near, near], [far, far], [0.0, 0.005])
    assert free[1, 2] > 0.3 and gated[1, 2] == 0.0
    assert gated[1, 0] == pytest.approx(free[1, 0], rel=1e-12)
    assert gated[1, 1] == pytest.approx(free[1, 1] + free[1, 2], rel=1e-12)
    np.testing.assert_allclose(gated[0], free[0])


def test_vertical_sign_adds_net_wins_at_the_horizon():
    """Far barriers: every label is decided at the horizon, P(long) = P(R_H > log(1 + c))."""
    mu, sigma, h, c = 1e-4, 1e-3, 5, 5e-4
    p = geometry.barrier_probabilities(gaussian_quantiles(mu, sigma, h), LEVELS, [10.0],
                                       [0.99], [c], vertical="sign", n_paths=20000)
    sd = sigma * np.sqrt(h)
    assert p[0, 2] == pytest.approx(norm.sf((np.log1p(c) - mu * h) / sd), abs=0.01)
    assert p[0, 0] == pytest.approx(norm.cdf((np.log1p(-c) - mu * h) / sd), abs=0.01)
    zero = geometry.barrier_probabilities(gaussian_quantiles(mu, sigma, h), LEVELS, [10.0],
                                          [0.99], [c])
    np.testing.assert_allclose(zero[0], [0.0, 1.0, 0.0])


def test_skewed_marginal_is_respected_at_the_knots():
    """One step, closes only: P(R_1 >= the 0.7 quantile) = 0.3 even for a skewed forecast."""
    q = np.array([[[-0.02, -0.01, -0.006, -0.003, 0.0, 0.004, 0.01, 0.02, 0.04]]])
    p = geometry.barrier_probabilities(q, LEVELS, [np.expm1(0.01)], [-np.expm1(-0.01)], [0.0],
                                       monitoring="discrete", n_paths=40000)
    assert p[0, 2] == pytest.approx(0.3, abs=0.01)
    assert p[0, 0] == pytest.approx(0.2, abs=0.01)


def test_expected_return_and_confidence():
    mu, sigma, h = 1e-4, 2e-3, 20
    er = geometry.expected_return(gaussian_quantiles(mu, sigma, h), LEVELS)
    assert er[0] == pytest.approx(np.expm1(mu * h + 0.5 * sigma**2 * h), rel=1e-3)
    conf = geometry.confidence(np.array([[0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1.0]]))
    np.testing.assert_allclose(conf, [0.2, 0.0, 1.0], atol=1e-12)
    with pytest.raises(FactoryError, match="quantile_levels"):
        geometry.normal_scores([0.5, 0.5])


# ---------------------------------------------------------------------------- adapter
def make_dataset(n_bars: int = 160, horizon: int = HORIZON, seed: int = 0) -> Dataset:
    """Two symbols of random-walk bars; rows at every bar with a label window."""
    rng = np.random.default_rng(seed)
    bars, metas = {}, []
    for sym, level in (("AAA", 4000.0), ("BBB", 2000.0)):
        index = pd.date_range("2024-01-02", periods=n_bars, freq="5min", tz="UTC")
        close = level * np.exp(np.cumsum(rng.normal(0, 1e-3, n_bars)))
        bars[sym] = pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999,
                                  "close": close, "volume": 1.0}, index=index)
        idx = np.arange(5, n_bars - horizon)
        metas.append(pd.DataFrame({
            "timestamp": index[idx], "symbol": sym, "bar_idx": idx, "exit_idx": idx + horizon,
            "label": rng.integers(-1, 2, len(idx)), "cost": 2e-4,
            "barrier_up": rng.uniform(2e-3, 4e-3, len(idx)),
            "barrier_dn": rng.uniform(2e-3, 4e-3, len(idx)),
            "split": np.where(idx < n_bars // 2, "train", "val"), "weight": 1.0}))
    meta = pd.concat(metas, ignore_index=True)
    X = pd.DataFrame({"f0": np.zeros(len(meta), np.float32)})
    instruments = {s: Instrument(s, tick_size=0.25, point_value=5.0, commission=0.62,
                                 slippage_ticks=1) for s in bars}
    return Dataset(X=X, meta=meta, bars=bars, instruments=instruments,
                   info={"horizon": horizon})


def test_context_windows_end_at_the_decision_bar():
    ds = make_dataset()
    adapter = ContextAdapter(context_len=32).fit(ds, ds.rows("train"))
    rows = ds.rows("val")
    x = adapter.transform(ds, rows)
    assert len(x) == len(rows) and x.horizon == HORIZON
    windows = x.batch(np.arange(len(x)))
    meta = ds.meta.iloc[rows]
    for i, (sym, t) in enumerate(zip(meta["symbol"], meta["bar_idx"], strict=True)):
        close = ds.bars[sym]["close"].to_numpy()
        np.testing.assert_array_equal(windows[i], close[t - 31 : t + 1])
    np.testing.assert_array_equal(x.barrier_up, meta["barrier_up"].to_numpy())
    # the cost is known at the decision: round trip over the decision bar's close
    closes = np.array([ds.bars[s]["close"].to_numpy()[t] for s, t in
                       zip(meta["symbol"], meta["bar_idx"], strict=True)])
    np.testing.assert_allclose(x.cost, 2 * (0.25 + 0.62 / 5.0) / closes, rtol=1e-12)
    np.testing.assert_array_equal(x.y, meta["label"].to_numpy() + 1)
    # short history: NaN on the left, the available closes on the right
    first = adapter.transform(ds, np.array([0]))
    window = first.batch(np.array([0]))[0]
    assert np.isnan(window[:26]).all()
    np.testing.assert_array_equal(window[26:], ds.bars["AAA"]["close"].to_numpy()[:6])
    # bars after t never reach a window
    for frame in ds.bars.values():
        frame.loc[frame.index[100:], "close"] *= 1000.0
    after = adapter.transform(ds, rows).batch(np.arange(len(x)))
    early = meta["bar_idx"].to_numpy() < 100
    np.testing.assert_array_equal(after[early], windows[early])


def test_context_adapter_state_permutation_and_meta_labels():
    ds = make_dataset()
    adapter = ContextAdapter(context_len=16).fit(ds, ds.rows("train"))
    restored = ContextAdapter.from_state(json.loads(json.dumps(adapter.state())))
    rows = ds.rows("val")
    a, b = adapter.transform(ds, rows), restored.transform(ds, rows)
    np.testing.assert_array_equal(a.batch(np.arange(len(a))), b.batch(np.arange(len(b))))
    assert restored.feature_names_ == ["close"]
    part = a.subset(a.y == 2)  # the same windows and geometry for the kept rows
    kept = np.flatnonzero(a.y == 2)
    np.testing.assert_array_equal(part.batch(np.arange(len(part))), a.batch(kept))
    np.testing.assert_array_equal(part.rows, rows[kept])
    np.testing.assert_array_equal(part.barrier_dn, a.barrier_dn[kept])
    shuffled = a.permute_feature(0, np.random.default_rng(0))
    for sym in ds.bars:  # each symbol keeps its own closes, in another order
        lo = a.first[ds.meta["symbol"].to_numpy()[rows] == sym][0]
        size = len(ds.bars[sym])
        seg, orig = shuffled.closes[lo : lo + size], a.closes[lo : lo + size]
        np.testing.assert_array_equal(np.sort(seg), np.sort(orig))
        assert not np.array_equal(seg, orig)
    ds.meta.loc[rows[0], "barrier_up"] = np.nan
    with pytest.raises(FactoryError, match="must be finite"):
        adapter.transform(ds, rows)
    ds.meta["side"] = 1
    with pytest.raises(FactoryError, match="labeling.meta=null"):
        ContextAdapter().fit(ds, ds.rows("train"))


def test_model_yaml_follows_the_labeling(make_cfg):
    cfg = make_cfg("model=chronos_bolt", "labeling.vertical=sign")
    assert cfg.model.vertical == "sign" and cfg.adapter.context_len == 512
    assert cfg.adapter._target_ == "factory.adapters.context.ContextAdapter"
    assert make_cfg("model=timesfm").model.vertical == "zero"


# ---------------------------------------------------------------------------- backbones
def tiny_chronos_bolt(path: Path) -> Path:
    """A tiny random Chronos-Bolt (the real class: 1+1 T5 layers of width 16, 8-step
    patches, 8-step horizon) saved like a released checkpoint (config.json + safetensors).
    Reusable by other tests as ``model.weights=<path>``."""
    import torch
    from chronos.chronos_bolt import ChronosBoltModelForForecasting
    from transformers import T5Config

    config = T5Config(
        d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=8,
        feed_forward_proj="relu", vocab_size=2, decoder_start_token_id=0, pad_token_id=0,
        eos_token_id=1, architectures=["ChronosBoltModelForForecasting"],
        chronos_pipeline_class="ChronosBoltPipeline",
        chronos_config={"context_length": 64, "prediction_length": 8, "input_patch_size": 8,
                        "input_patch_stride": 8, "quantiles": list(LEVELS),
                        "use_reg_token": True})
    torch.manual_seed(0)
    ChronosBoltModelForForecasting(config).save_pretrained(path)
    return path


def tiny_timesfm(path: Path) -> Path:
    """A tiny random TimesFM 2.5 (the real module class with a 1-layer, width-16
    definition; patch and head lengths as released) as ``model.safetensors``."""
    import dataclasses

    import torch
    from safetensors.torch import save_file
    from timesfm import configs
    from timesfm.timesfm_2p5 import timesfm_2p5_torch as tfm

    stock = tfm.TimesFM_2p5_200M_torch_module.config
    width = 16
    tiny = dataclasses.replace(
        stock,
        tokenizer=dataclasses.replace(stock.tokenizer, hidden_dims=width, output_dims=width),
        stacked_transformers=configs.StackedTransformersConfig(1, dataclasses.replace(
            stock.stacked_transformers.transformer, model_dims=width, hidden_dims=width,
            num_heads=2)),
        output_projection_point=dataclasses.replace(stock.output_projection_point,
                                                    input_dims=width, hidden_dims=width),
        output_projection_quantiles=dataclasses.replace(stock.output_projection_quantiles,
                                                        input_dims=width, hidden_dims=width))
    module_cls = type("TinyTimesFM", (tfm.TimesFM_2p5_200M_torch_module,), {"config": tiny})
    torch.manual_seed(0)
    path.mkdir(parents=True, exist_ok=True)
    save_file(module_cls().state_dict(), str(path / "model.safetensors"))
    return path


@pytest.fixture(scope="module")
def chronos_dir(tmp_path_factory):
    path = tiny_chronos_bolt(tmp_path_factory.mktemp("chronos-bolt-tiny"))
    assert (path / "model.safetensors").is_file()
    return path


@pytest.fixture(scope="module")
def timesfm_dir(tmp_path_factory):
    return tiny_timesfm(tmp_path_factory.mktemp("timesfm-tiny"))


def _model(name: str, weights, **kw):
    cls = {"chronos_bolt": ChronosBoltModel, "timesfm": TimesFMModel}[name]
    return cls(weights=str(weights), device="cpu", n_paths=64, random_state=0, **kw)


@pytest.mark.parametrize("name", ["chronos_bolt", "timesfm"])
def test_tiny_backbone_predicts_saves_and_reloads(name, chronos_dir, timesfm_dir, tmp_path):
    weights = chronos_dir if name == "chronos_bolt" else timesfm_dir
    ds = make_dataset()
    adapter = ContextAdapter(context_len=48).fit(ds, ds.rows("train"))
    train = adapter.transform(ds, ds.rows("train"))
    x = adapter.transform(ds, ds.rows("val")[:40])
    model = _model(name, weights, batch_size=16).fit(train)
    out = model.predict_output(x)
    assert out.proba.shape == (40, 3) and np.isfinite(out.proba).all()
    np.testing.assert_allclose(out.proba.sum(axis=1), 1.0, atol=1e-9)
    assert (out.proba >= 0.001 / 3).all()  # the probability floor
    assert np.isfinite(out.expected_return).all()
    assert ((out.confidence >= 0) & (out.confidence <= 1)).all()
    assert len(np.unique(out.proba.round(6), axis=0)) > 1  # rows get their own forecasts
    np.testing.assert_array_equal(model.predict_proba(x), out.proba)
    # batching changes nothing (common random numbers in the geometry)
    other = _model(name, weights, batch_size=7).fit(train).predict_output(x)
    np.testing.assert_allclose(other.proba, out.proba, atol=1e-5)
    save_model(model, tmp_path / "m", ["close"], adapter_state=adapter.state())
    assert json.loads((tmp_path / "m" / "weights.json").read_text())["weights"] == str(weights)
    loaded, manifest = load_model(tmp_path / "m")
    assert manifest["family"] == "foundation" and manifest["input_kind"] == "context"
    again = loaded.predict_output(x)
    np.testing.assert_array_equal(again.proba, out.proba)
    np.testing.assert_array_equal(again.expected_return, out.expected_return)


def test_zero_shot_reads_no_label(chronos_dir):
    ds = make_dataset()
    adapter = ContextAdapter(context_len=48).fit(ds, ds.rows("train"))
    train, x = adapter.transform(ds, ds.rows("train")), adapter.transform(ds, ds.rows("val"))
    shuffled = adapter.transform(ds, ds.rows("train"))
    shuffled.y = np.random.default_rng(0).permutation(shuffled.y)
    a = _model("chronos_bolt", chronos_dir).fit(train).predict_proba(x)
    b = _model("chronos_bolt", chronos_dir).fit(shuffled).predict_proba(x)
    np.testing.assert_array_equal(a, b)


def test_changed_weights_are_refused_on_load(chronos_dir, tmp_path):
    import shutil

    weights = tmp_path / "w"
    shutil.copytree(chronos_dir, weights)
    ds = make_dataset()
    model = _model("chronos_bolt", weights).fit(ContextAdapter().fit(ds, ds.rows("train"))
                                                .transform(ds, ds.rows("train")))
    save_model(model, tmp_path / "m", ["close"])
    with open(weights / "model.safetensors", "r+b") as fh:  # flip bytes of the last tensor
        fh.seek(-4, 2)
        fh.write(b"\x00\x00\x80\x3f")
    with pytest.raises(FactoryError, match="SHA-256 differs"):
        load_model(tmp_path / "m")


def test_timesfm_definition_from_released_shapes_is_the_stock_one():
    import torch
    from timesfm.timesfm_2p5 import timesfm_2p5_torch as tfm

    with torch.device("meta"):
        module = tfm.TimesFM_2p5_200M_torch_module()
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert definition_from_shapes(shapes) == tfm.TimesFM_2p5_200M_torch_module.config
    with pytest.raises(FactoryError, match="not a TimesFM 2.5 checkpoint"):
        definition_from_shapes({"encoder.weight": (4, 4)})


def test_missing_weights_give_one_clear_error(monkeypatch, tmp_path, chronos_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never touch the network
    ds = make_dataset()
    train = ContextAdapter().fit(ds, ds.rows("train")).transform(ds, ds.rows("train"))
    for weights in (tmp_path / "no-such-dir", "factory-tests/no-such-model"):
        with pytest.raises(FactoryError, match="not a local directory and could not be "
                                               "downloaded") as err:
            _model("chronos_bolt", weights).fit(train)
        assert f"huggingface-cli download {weights} --local-dir" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FactoryError, match="lacks"):
        _model("timesfm", tmp_path / "empty").fit(train)
    with pytest.raises(FactoryError, match="monitoring must be one of"):
        _model("chronos_bolt", chronos_dir, monitoring="hourly").fit(train)
    with pytest.raises(FactoryError, match="subset of the levels"):
        _model("chronos_bolt", chronos_dir, quantile_levels=[0.05, 0.5]).fit(train)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["chronos_bolt", "timesfm"])
def test_end_to_end_run_with_local_weights(name, make_cfg, tmp_path, chronos_dir, timesfm_dir):
    """The real pipeline (Phase 1, adapter, trainer, evaluation, artifacts) with tiny weights."""
    from factory.experiment import run

    weights = chronos_dir if name == "chronos_bolt" else timesfm_dir
    run(make_cfg(f"model={name}", f"model.weights={weights}", "model.device=cpu",
                 "model.n_paths=128", "adapter.context_len=64", "horizon=8"))
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["info"]["family"] == "foundation"
    pred = pd.read_parquet(out / "predictions" / "test.parquet")
    assert len(pred) == metrics["test"]["n_samples"] > 0  # no row dropped
    np.testing.assert_allclose(pred[["p_short", "p_flat", "p_long"]].sum(axis=1), 1, atol=1e-9)
    assert pred["expected_return"].notna().all() and pred["confidence"].between(0, 1).all()
    loaded, _ = load_model(out / "bundle" / "predictor")
    assert loaded.weights == str(weights)

"""Torch models end to end through the composed config: same data, labels, splits, costs and
metrics as the tabular models, standard run outputs, and a saved bundle that predicts exactly
what the run predicted."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from factory.dataset import PROBA_COLUMNS
from factory.errors import FactoryError
from factory.experiment import run
from factory.models.artifacts import load_adapter, load_model
from factory.training.predictor import ModelPredictor
from factory.training.torch_trainer import TorchTrainer

FAST = ["trainer.max_epochs=2", "trainer.progress=false", "trainer.num_threads=1"]


# the multi-resolution path end to end is slow (~10 s); its bundle parity and the end-to-end
# run of every torch model are in the slow group too
@pytest.mark.parametrize("name,adapter", [
    ("lstm", "sequence"), pytest.param("resnet1d", "multires", marks=pytest.mark.slow)])
def test_torch_run_writes_standard_outputs_and_reloads_exactly(make_cfg, name, adapter):
    cfg = make_cfg(f"model={name}", *FAST, "adapter.seq_len=16")  # size is not the point
    assert cfg.adapter._target_.split(".")[-2] == adapter  # chosen by the model's YAML
    value = run(cfg)
    out = cfg.paths.output_dir
    metrics = json.loads(open(f"{out}/metrics.json").read())
    assert metrics["val"]["f1_macro"] == pytest.approx(value)
    assert metrics["info"]["adapter"] == adapter and metrics["info"]["family"] == "neural"
    assert 1 <= metrics["info"]["epochs"] <= 2
    for key in ("accuracy", "f1_macro", "log_loss", "sharpe", "n_trades"):
        assert key in metrics["test"]
    history = pd.read_csv(f"{out}/history.csv")
    assert list(history["epoch"]) == list(range(1, len(history) + 1))
    assert {"train_loss", "val_loss", "val_f1_macro", "lr", "seconds"} <= set(history.columns)

    test = pd.read_parquet(f"{out}/predictions/test.parquet")
    dropped = metrics["info"]["rows_without_window"]["test"]
    model, manifest = load_model(f"{out}/bundle/predictor")
    adapter_obj = load_adapter(f"{out}/bundle/predictor")
    assert manifest["input_kind"] == adapter
    assert manifest["params"]["network"]["_target_"].startswith("factory.models.neural.")
    from factory.phase1 import load_or_build

    ds = load_or_build(cfg)[0]
    x = adapter_obj.transform(ds, ds.rows("test"))
    assert len(x) == len(test) == len(ds.rows("test")) - dropped
    np.testing.assert_array_equal(ds.meta["bar_idx"].to_numpy()[x.rows], test["bar_idx"])
    np.testing.assert_allclose(model.predict_proba(x),
                               test[["p_short", "p_flat", "p_long"]].to_numpy(), atol=1e-6)
    # the whole predictor (model + adapter) reloads and predicts the same frame
    again = ModelPredictor.load(f"{out}/bundle/predictor").predict(ds, ds.rows("test"))
    np.testing.assert_allclose(again[PROBA_COLUMNS].to_numpy(), test[PROBA_COLUMNS].to_numpy(),
                               atol=1e-6)


def test_same_seed_same_run(make_cfg, tmp_path):
    """The whole pipeline repeats exactly for a torch model (one epoch: size is irrelevant)."""
    one = ["model=gru", *FAST, "trainer.max_epochs=1", "adapter.seq_len=16"]
    a = run(make_cfg(*one))
    cfg = make_cfg(*one, f"paths.output_dir={tmp_path / 'again'}")
    assert run(cfg) == a
    first = pd.read_parquet(tmp_path / "run" / "predictions" / "test.parquet")
    again = pd.read_parquet(tmp_path / "again" / "predictions" / "test.parquet")
    pd.testing.assert_frame_equal(first, again)


@pytest.mark.parametrize("overrides,match", [
    (("model=lstm", "adapter=tabular"), "adapter=sequence"),
    (("model=xgboost", "adapter=sequence"), "adapter=tabular"),
    (("model=resnet1d", "adapter=sequence"), "adapter=multires"),
])
def test_incompatible_adapter_is_a_clear_error_before_phase1(make_cfg, overrides, match):
    cfg = make_cfg(*overrides)
    with pytest.raises(FactoryError, match=match):
        run(cfg)


def test_early_stopping_restores_the_best_epoch():
    import torch

    from factory.adapters.base import TabularInput

    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 4)).astype(np.float32)
    y = rng.integers(0, 3, 600)  # pure noise: validation loss soon stops improving
    train = TabularInput(X[:400], y[:400], np.ones(400), ["a", "b", "c", "d"])
    val = TabularInput(X[400:], y[400:], np.ones(200), ["a", "b", "c", "d"])
    net = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    trainer = TorchTrainer(max_epochs=40, patience=2, progress=False, num_threads=1)
    history = trainer.fit(net, train, val, batch_size=32, lr=1e-2, weight_decay=0.0, seed=0)
    assert len(history) < 40  # stopped early
    best = min(h["val_loss"] for h in history)
    assert trainer.evaluate(net, val)["val_loss"] == pytest.approx(best, rel=1e-6)
    assert [h["best"] for h in history].count(True) >= 1

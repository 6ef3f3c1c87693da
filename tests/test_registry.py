"""The registry: versions, the live pointer, rollback, history, and concurrent promotes."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from factory.errors import FactoryError
from factory.registry import Registry


def _bundle(root: Path, tag: str) -> Path:
    path = root / f"bundle_{tag}"
    (path / "predictor").mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"name": "m", "tag": tag}))
    (path / "predictor" / "model.json").write_text(tag)
    return path


def test_promote_rollback_and_history(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_USER", "alice")
    reg = Registry(tmp_path / "reg")
    with pytest.raises(FactoryError, match="no live version of 'm'"):
        reg.path("m")
    v1 = reg.promote("m", _bundle(tmp_path, "a"), "first", run="runs/a", gate={"parity": 0.0})
    v2 = reg.promote("m", _bundle(tmp_path, "b"), "better on val")
    assert (v1, v2) == (1, 2) and reg.live("m") == 2 and reg.versions("m") == [1, 2]
    assert (reg.path("m") / "predictor" / "model.json").read_text() == "b"
    assert reg.rollback("m", "v2 drifted") == 1 and reg.live("m") == 1
    with pytest.raises(FactoryError, match="no earlier live version"):
        reg.rollback("m")
    history = reg.history("m")
    assert [h["action"] for h in history] == ["promote", "promote", "rollback"]
    assert history[0]["who"] == "alice" and history[0]["from_run"] == "runs/a"
    assert history[1]["why"] == "better on val" and history[1]["previous"] == 1
    assert history[0]["gate"] == {"parity": 0.0} and reg.names() == ["m"]
    with pytest.raises(FactoryError, match="not a plain name"):
        reg.promote("../x", _bundle(tmp_path, "c"), "no")


def _promote_many(root: str, bundle: str, n: int) -> None:
    reg = Registry(root)
    for i in range(n):
        reg.promote("m", Path(bundle), f"worker {bundle} #{i}")


def test_concurrent_promotes_from_two_processes_do_not_corrupt(tmp_path):
    a, b = _bundle(tmp_path, "a"), _bundle(tmp_path, "b")
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_promote_many, args=(str(tmp_path / "reg"), str(x), 5))
               for x in (a, b)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    reg = Registry(tmp_path / "reg")
    assert reg.versions("m") == list(range(1, 11))  # ten versions, none lost or doubled
    history = reg.history("m")
    assert sorted(h["version"] for h in history) == list(range(1, 11))
    assert reg.live("m") == max(h["version"] for h in history)
    json.loads((tmp_path / "reg" / "m" / "live.json").read_text())  # never half-written
    for v in range(1, 11):  # every version is a whole copy
        assert (reg.path("m", v) / "predictor" / "model.json").read_text() in ("a", "b")


def test_promote_task_gates_then_registers(make_cfg, tmp_path):
    from factory.experiment import run
    from factory.tasks.registry import listing, promote, rollback

    train = make_cfg("model.n_estimators=30")
    run(train)
    bundle = Path(train.paths.output_dir) / "bundle"
    common = [f"bundle={bundle}", f"registry.path={tmp_path / 'reg'}",
              "registry.gate.max_gap=10"]
    with pytest.raises(FactoryError, match=r"not promoted: failed check\(s\) not_degenerate"):
        promote(make_cfg("task=promote", 'reason="tight"', *common,
                         "registry.gate.max_class_share=0.2"))
    with pytest.raises(FactoryError, match="`reason` is required"):
        promote(make_cfg("task=promote", *common))
    assert promote(make_cfg("task=promote", 'reason="first"', *common)) == 1
    assert promote(make_cfg("task=promote", 'reason="again"', *common)) == 2
    name = Registry(tmp_path / "reg").names()[0]
    assert name.startswith("test_h20_")  # tests name their runs "test"
    gate = Registry(tmp_path / "reg").history(name)[0]["gate"]
    assert gate["parity"] == 0.0 and set(gate) >= {"features", "not_degenerate", "val_test_gap"}
    assert rollback(make_cfg("task=rollback", f"name={name}", 'reason="back"',
                             f"registry.path={tmp_path / 'reg'}")) == 1
    out = make_cfg("task=registry", f"registry.path={tmp_path / 'reg'}")
    assert listing(out) == 1.0
    doc = json.loads((Path(out.paths.output_dir) / "registry.json").read_text())
    assert doc[name]["live"] == 1 and doc[name]["versions"] == [1, 2]

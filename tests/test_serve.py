"""task=serve: the real server (uvicorn in a thread, a free loopback port) and a real HTTP
client (httpx).

A tiny xgboost run's bundle is served. Its answers over the first bars of the test period
must equal the bundle's batch predictions (bit for bit: the tree models' streaming parity in
tests/test_bundle.py); every bad request gets a 4xx naming the field and the fix and changes
nothing (the next good bar still answers exactly); a promote during a replay switches every
answer from one bar on, with no failed request; a version that cannot load keeps the old
one serving and shows the error in /health. The prediction log the server writes is a log
``task=monitor`` reads, and its outcomes resolve to the run's own labels.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from factory.bundle.reader import Bundle
from factory.config import build
from factory.dataset import PROBA_COLUMNS
from factory.errors import FactoryError
from factory.experiment import run
from factory.monitoring import Monitor, PredictionLog, run_check
from factory.registry import Registry
from factory.serving.app import create_app
from factory.serving.server import BackgroundServer, check_port
from factory.tasks.serve import build_service
from tests.conftest import ROOT, compose_config

MODELS = {"a": ["model.n_estimators=30"], "b": ["model.n_estimators=30", "model.max_depth=2"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Bundles (trained on first use), the run's bars, and where the test period starts."""
    root = tmp_path_factory.mktemp("serve")
    runs: dict[str, Path] = {}

    def bundle(tag: str) -> Path:
        if tag not in runs:
            cfg = compose_config(root / tag, *MODELS[tag], f"paths.cache_dir={root / 'cache'}")
            run(cfg)
            runs[tag] = Path(cfg.paths.output_dir)
        return runs[tag] / "bundle"

    cfg = compose_config(root / "data", f"paths.cache_dir={root / 'cache'}")
    bars = build(cfg.data).load()
    first_a = bundle("a")
    start = pd.read_parquet(first_a.parent / "predictions" / "test.parquet")["timestamp"].min()
    first = {s: int((b.index < start).sum()) for s, b in bars.bars.items()}
    batch = {}

    def predictions(tag: str) -> pd.DataFrame:
        if tag not in batch:
            batch[tag] = Bundle.load(bundle(tag)).predict(bars).set_index(["symbol",
                                                                           "timestamp"])
        return batch[tag]

    return {"root": root, "bundle": bundle, "bars": bars.bars, "first": first,
            "predictions": predictions}


def bar_json(symbol: str, frame: pd.DataFrame) -> list[dict]:
    return [{"symbol": symbol, "timestamp": ts.isoformat().replace("+00:00", "Z"),
             **{k: float(v) for k, v in row.items()}} for ts, row in frame.iterrows()]


@contextlib.contextmanager
def serving(world, tmp_path, *overrides: str):
    """The configured server on a free loopback port, and a client for it."""
    cfg = compose_config(tmp_path, "task=serve", f"paths.cache_dir={world['root'] / 'cache'}",
                         "serve.log.flush_seconds=0.2", *overrides)
    service = build_service(cfg)
    with BackgroundServer(create_app(service)) as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        client.service = service  # the tests look inside, e.g. at the predictor
        yield client, cfg


def warm(client: httpx.Client, world, symbols=("MES", "MGC")) -> None:
    for sym in symbols:
        r = client.post("/warmup", json=bar_json(sym, world["bars"][sym].iloc[
            :world["first"][sym]]))
        assert r.status_code == 200 and r.json()["symbols"][sym]["warm"], r.text


def next_bars(world, client, sym: str, n: int = 1) -> pd.DataFrame:
    """The ``n`` bars after the last one the server holds for ``sym``."""
    last = pd.Timestamp(client.get("/health").json()["symbols"][sym]["last_bar"])
    bars = world["bars"][sym]
    return bars.iloc[bars.index.searchsorted(last, "right"):][:n]


def assert_batch(answers: list[dict], batch: pd.DataFrame) -> None:
    """Every answer equals the bundle's batch prediction of its bar (exactly: trees)."""
    assert answers and all(a["ready"] for a in answers)
    keys = [(a["symbol"], pd.Timestamp(a["timestamp"])) for a in answers]
    want = batch.loc[keys, PROBA_COLUMNS].to_numpy()
    got = np.asarray([[a[c] for c in PROBA_COLUMNS] for a in answers])
    assert np.array_equal(got, want), np.abs(got - want).max()
    classes = np.array(["short", "flat", "long"])[want.argmax(axis=1)]
    assert [a["prediction"] for a in answers] == classes.tolist()


def metric(client: httpx.Client, name: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_warmup_then_replay_equals_batch_and_is_logged(world, tmp_path):
    overrides = [f"bundle={world['bundle']('a')}", "serve.drift.every_seconds=0.2",
                 "serve.drift.monitor.min_rows=10"]
    with serving(world, tmp_path, *overrides) as (client, cfg):
        first = world["bars"]["MES"].iloc[[world["first"]["MES"]]]
        r = client.post("/bars", json=bar_json("MES", first)[0])
        need = Bundle.load(world["bundle"]("a")).warmup() + 1
        assert r.status_code == 409 and r.json()["needed"] == {"MES": need}, r.text
        assert r.json()["detail"].startswith("symbol 'MES' is not warmed up")
        assert f"MES needs {need} more" in r.json()["detail"] and "/warmup" in r.json()["detail"]
        assert client.get("/health").json()["warmed"] == []
        mes = world["bars"]["MES"].iloc[:world["first"]["MES"]]  # in two parts: appended
        assert client.post("/warmup", json=bar_json("MES", mes.iloc[:40])).json()[
            "symbols"]["MES"] == {"warm": False, "needed": need - 40, "bars": 40,
                                  "last_bar": bar_json("MES", mes.iloc[[39]])[0]["timestamp"]}
        assert client.post("/warmup", json=bar_json("MES", mes.iloc[40:])).json()[
            "symbols"]["MES"]["warm"]
        warm(client, world, ["MGC"])
        health = client.get("/health").json()
        assert health["warmed"] == ["MES", "MGC"] and health["status"] == "ok"
        answers = []
        for _ in range(6):  # one bar per request, both symbols, then both in one request
            for sym in ("MES", "MGC"):
                r = client.post("/bars", json=bar_json(sym, next_bars(world, client, sym))[0])
                assert r.status_code == 200, r.text
                answers += r.json()["predictions"]
        pair = [bar_json(s, next_bars(world, client, s))[0] for s in ("MGC", "MES")]
        both = client.post("/bars", json=pair).json()["predictions"]
        assert [(a["symbol"], a["timestamp"]) for a in both] == [(p["symbol"], p["timestamp"])
                                                                for p in pair]
        answers += both
        answers += _concurrently(client, world, ["MES", "MGC"], 8)
        assert_batch(answers, world["predictions"]("a"))
        assert {(a["bundle"], a["version"], a["side"] in (-1, 0, 1)) for a in answers} == {
            (health["bundle"], None, True)}
        counts = metric(client, "factory_serve_requests_total")
        assert counts[(("endpoint", "/bars"), ("status", "200"))] == 13 + 16
        assert counts[(("endpoint", "/bars"), ("status", "409"))] == 1
        assert counts[(("endpoint", "/warmup"), ("status", "200"))] == 3
        by_class = metric(client, "factory_serve_predictions_total")
        for cls in ("short", "flat", "long"):
            assert sum(v for k, v in by_class.items() if ("class", cls) in k) == sum(
                a["prediction"] == cls for a in answers)
        deadline = time.monotonic() + 30
        while client.get("/health").json()["drift"]["rows"] < len(answers):
            assert time.monotonic() < deadline, client.get("/health").json()["drift"]
            time.sleep(0.1)
        drift = client.get("/health").json()["drift"]
        level = metric(client, "factory_serve_psi_alert_level")[()]
        assert drift["level"] in ("ok", "warn", "alert") and level == {
            "ok": 0, "warn": 1, "alert": 2}[drift["level"]] and drift["psi_max"] >= 0
    path = Path(cfg.serve.log.path)  # written at shutdown: what task=monitor reads
    log = PredictionLog.read(path)
    frame = log.frame()
    assert len(frame) == len(answers) and set(frame["model"]) == {
        f"{health['bundle']}@{health['bundle_id']}"}
    assert log.features == Bundle.load(world["bundle"]("a")).features.columns
    served = pd.DataFrame(answers).assign(timestamp=lambda f: pd.to_datetime(f["timestamp"]))
    logged = frame.merge(served, on=["symbol", "timestamp"], suffixes=("", "_served"))
    assert len(logged) == len(answers) and np.array_equal(
        logged[PROBA_COLUMNS].to_numpy(), logged[[f"{c}_served" for c in PROBA_COLUMNS]])
    assert run_check(Monitor(min_rows=10), world["bundle"]("a") / "reference.json", path) in (
        0, 1, 2)
    bars = {s: world["bars"][s] for s in ("MES", "MGC")}
    instruments = Bundle.load(world["bundle"]("a")).instruments
    assert log.resolve(bars, instruments) == len(answers)  # outcomes = the run's labels
    test = pd.read_parquet(world["bundle"]("a").parent / "predictions" / "test.parquet")
    both = log.frame().merge(test, on=["timestamp", "symbol"])
    assert len(both) == len(answers) and (both["outcome"] == both["label"]).all()


def _concurrently(client, world, symbols: list[str], n: int) -> list[dict]:
    """One client thread per symbol, ``n`` bars each, all at once. The streamers share the
    bundle's predictor, which is not thread-safe (XGBoost reconfigures its booster on each
    predict): the server must let one bar at a time into it."""
    frames = {s: next_bars(world, client, s, n) for s in symbols}
    out: dict[str, list] = {s: [] for s in symbols}
    # the shared model itself (the streamer's fast path calls it without the predictor)
    predictor = client.service.deployment.bundle.predictor.model
    inside, peak, predict = [0], [0], predictor.predict_output

    def watched(*args, **kwargs):  # how many threads are in the predictor at once
        inside[0] += 1
        peak[0] = max(peak[0], inside[0])
        try:
            time.sleep(0.002)  # widen the window a race would need
            return predict(*args, **kwargs)
        finally:
            inside[0] -= 1

    def replay(sym: str) -> None:
        with httpx.Client(base_url=client.base_url, timeout=60) as own:
            for k in range(n):
                r = own.post("/bars", json=bar_json(sym, frames[sym].iloc[[k]])[0])
                out[sym].append(r.json()["predictions"][0] if r.status_code == 200 else r.text)

    threads = [threading.Thread(target=replay, args=(s,)) for s in symbols]
    predictor.predict_output = watched
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        del predictor.predict_output
    answers = [a for s in symbols for a in out[s]]
    assert all(isinstance(a, dict) for a in answers), answers
    assert peak[0] == 1  # never two bars in the shared predictor at once
    return answers


def _bad_requests(world, client) -> list[tuple]:
    """(path, body, status, error, field, words of the message)."""
    nxt = bar_json("MES", next_bars(world, client, "MES", 2))
    last = bar_json("MES", world["bars"]["MES"].iloc[
        [world["bars"]["MES"].index.get_loc(pd.Timestamp(nxt[0]["timestamp"])) - 1]])[0]
    good, later = nxt

    def bar(**change):
        out = {**good, **change}
        return {k: v for k, v in out.items() if v is not None}

    def raw(key: str, token: str, before=()) -> bytes:  # a token json.dumps refuses
        body = [*before, {**good, key: "@"}] if before else {**good, key: "@"}
        return json.dumps(body).replace('"@"', token).encode()

    return [
        ("/bars", b"{not json", 400, "malformed", "body", ["not JSON", "JSON object"]),
        ("/bars", b"", 400, "malformed", "body", ["empty"]),
        ("/bars", b"[]", 422, "invalid_bar", "body", ["empty", "send one bar"]),
        ("/bars", bar(close=None), 422, "invalid_bar", "close", ["missing", "volume"]),
        ("/bars", bar(colse=1.0), 422, "invalid_bar", "colse", ["not a bar field"]),
        ("/bars", raw("close", "NaN"), 422, "invalid_bar", "close", ["not a finite number"]),
        ("/bars", raw("volume", "-Infinity"), 422, "invalid_bar", "volume",
         ["not a finite number"]),
        ("/bars", bar(high=str(good["high"])), 422, "invalid_bar", "high", ["not a JSON number"]),
        ("/bars", bar(volume=-1.0), 422, "invalid_bar", "volume", [">= 0"]),
        ("/bars", bar(low=0.0), 422, "invalid_bar", "low", ["> 0"]),
        ("/bars", bar(timestamp=good["timestamp"][:-1]), 422, "invalid_bar", "timestamp",
         ["no timezone", "2024-05-02T14:35:00Z"]),
        ("/bars", bar(timestamp="yesterday"), 422, "invalid_bar", "timestamp",
         ["not a time", "ISO 8601"]),
        ("/bars", bar(timestamp=good["timestamp"].replace(":00Z", ":30Z")), 422,
         "invalid_bar", "timestamp", ["bar grid", "open time"]),
        ("/bars", bar(high=max(good["open"], good["close"]) - 0.25), 422, "invalid_bar",
         "high", ["below the higher of open and close", "true high"]),
        ("/bars", bar(low=min(good["open"], good["close"]) + 0.25), 422, "invalid_bar",
         "low", ["above the lower of open and close", "low <= open, close <= high"]),
        ("/bars", bar(symbol="ES"), 422, "unknown_symbol", "symbol", ["'ES'", "MES", "MGC"]),
        ("/bars", bar(symbol=5), 422, "invalid_bar", "symbol", ["as a string"]),
        ("/bars", last, 409, "duplicate_bar", "timestamp", ["again", "once, in time order"]),
        ("/bars", {**last, "timestamp": "2024-01-08T00:00:00Z"}, 409, "out_of_order",
         "timestamp", ["before the last bar", "in time order"]),
        ("/bars", raw("close", "NaN", [good]), 422, "invalid_bar", "bars[1].close",
         ["finite"]),
        ("/bars", [later, good], 409, "out_of_order", "bars[1].timestamp", ["before"]),
        ("/bars", [good, {**good, "symbol": "MGC", "timestamp": "2024-01-08T00:00:00Z"}],
         409, "out_of_order", "bars[1].timestamp", ["MGC", "before the last bar"]),
        ("/bars", [good, later, later, later], 413, "too_many_bars", "body",
         ["serve.max_bars", "3"]),
        ("/bars", 5, 422, "invalid_bar", "body", ["JSON object"]),
        ("/warmup", [later, good], 422, "out_of_order", "bars[1].timestamp",
         ["sorted", "once"]),
        ("/warmup", last, 409, "out_of_order", "timestamp", ["reset=true", "after the last"]),
        ("/warmup?reset=maybe", [good], 422, "invalid_query", "reset", ["reset=true"]),
    ]


def test_bad_requests_get_4xx_naming_the_field_and_change_nothing(world, tmp_path):
    overrides = [f"bundle={world['bundle']('a')}", "serve.max_bars=3"]
    with serving(world, tmp_path, *overrides) as (client, cfg):
        warm(client, world)
        before = client.get("/health").json()
        for path, body, status, error, field, words in _bad_requests(world, client):
            kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
            r = client.post(path, **kwargs)
            out = r.json()
            assert (r.status_code, out["error"]) == (status, error), (path, body, r.text)
            if field is not None:
                assert out["field"] == field, (body, out)
            for word in words:
                assert word in out["detail"], (word, out)
            if field not in (None, "body"):
                assert out["detail"].startswith(field), out
        after = client.get("/health").json()
        assert after["symbols"] == before["symbols"] and after["log"]["rows"] == 0
        answers = []
        for sym in ("MES", "MGC"):  # the state was untouched: the next bars answer exactly
            r = client.post("/bars", json=bar_json(sym, next_bars(world, client, sym, 2)))
            answers += r.json()["predictions"]
        assert_batch(answers, world["predictions"]("a"))
        refused = metric(client, "factory_serve_requests_total")
        assert sum(v for k, v in refused.items() if k[1][1].startswith("4")) == len(
            _bad_requests(world, client))
        assert client.get("/nowhere").status_code == 404
        assert metric(client, "factory_serve_requests_total")[
            (("endpoint", "other"), ("status", "404"))] == 1


def _registry(world, tmp_path, *tags: str) -> Registry:
    registry = Registry(tmp_path / "registry")
    for tag in tags:
        registry.promote("m", world["bundle"](tag), f"test {tag}")
    return registry


def _replay_until(client, world, versions: list, done, limit: int = 400) -> list[dict]:
    """Replay both symbols bar by bar (every answer must be 200) until ``done(answers)``."""
    answers = []
    pos = {s: world["bars"][s].index.searchsorted(pd.Timestamp(
        client.get("/health").json()["symbols"][s]["last_bar"]), "right") for s in versions}
    for _ in range(limit):
        for sym in versions:
            r = client.post("/bars", json=bar_json(sym, world["bars"][sym].iloc[[pos[sym]]]))
            assert r.status_code == 200, r.text  # no request fails or is dropped
            pos[sym] += 1
            answers += r.json()["predictions"]
        if done(answers):
            return answers
    raise AssertionError(f"not done after {limit} bars per symbol")


def test_hot_reload_during_a_replay_switches_at_one_bar(world, tmp_path):
    registry = _registry(world, tmp_path, "a")
    world["bundle"]("b")  # trained before the replay starts
    overrides = [f"registry.path={registry.root}", "serve.name=m", "serve.reload.poll_seconds=0.05"]
    with serving(world, tmp_path, *overrides) as (client, cfg):
        warm(client, world)
        answers = _replay_until(client, world, ["MES", "MGC"], lambda a: len(a) >= 6)
        registry.promote("m", world["bundle"]("b"), "better")  # while the replay goes on
        answers += _replay_until(client, world, ["MES", "MGC"], lambda a: sum(
            x["version"] == 2 for x in a) >= 6)
        versions = [a["version"] for a in answers]
        k = versions.index(2)
        assert versions == [1] * k + [2] * (len(versions) - k), versions  # one switch
        assert_batch(answers[:k], world["predictions"]("a"))
        assert_batch(answers[k:], world["predictions"]("b"))
        keys = [(a["symbol"], pd.Timestamp(a["timestamp"])) for a in answers[k:]]
        assert not np.array_equal(world["predictions"]("a").loc[keys, PROBA_COLUMNS],
                                  world["predictions"]("b").loc[keys, PROBA_COLUMNS])
        health = client.get("/health").json()
        assert (health["version"], health["reload"]["reloads"], health["reload"]["error"]) == (
            2, 1, None)
        assert health["warmed"] == ["MES", "MGC"]
        assert metric(client, "factory_serve_reloads_total") == {(("result", "ok"),): 1.0}
        assert metric(client, "factory_serve_bundle_version") == {(): 2.0}
    models = set(PredictionLog.read(Path(cfg.serve.log.path)).frame()["model"])
    assert models == {f"{health['bundle']}@v1", f"{health['bundle']}@v2"}


def test_a_version_that_fails_to_load_keeps_the_old_one_serving(world, tmp_path):
    registry = _registry(world, tmp_path, "a")
    broken = tmp_path / "broken"
    shutil.copytree(world["bundle"]("a"), broken)
    (broken / "metrics.json").write_text("{}")  # its manifest hash no longer matches
    overrides = [f"registry.path={registry.root}", "serve.name=m", "serve.reload.poll_seconds=0.05"]
    with serving(world, tmp_path, *overrides) as (client, cfg):
        warm(client, world)
        registry.promote("m", broken, "broken on purpose")
        deadline = time.monotonic() + 30
        while client.get("/health").json()["reload"]["error"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        health = client.get("/health").json()
        error = health["reload"]["error"]
        assert health["status"] == "degraded" and health["version"] == 1
        assert error["version"] == 2 and "still serving version 1" in error["message"]
        assert "metrics.json" in error["message"]
        answers = _replay_until(client, world, ["MES", "MGC"], lambda a: len(a) >= 4)
        assert {a["version"] for a in answers} == {1}
        assert_batch(answers, world["predictions"]("a"))
        assert metric(client, "factory_serve_reloads_total") == {(("result", "failed"),): 1.0}
        registry.rollback("m", "back to 1")  # the registry points at what serves: all clear
        deadline = time.monotonic() + 30
        while client.get("/health").json()["status"] != "ok":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/health").json()["reload"]["reloads"] == 0


def test_config_warmup_from_data_and_refusals(world, tmp_path, make_cfg):
    cfg = make_cfg("task=serve", f"bundle={world['bundle']('a')}", "serve.warmup_from_data=true",
                   "serve.history_bars=3000", "serve.log.path=null")
    service = build_service(cfg)
    health = service.health()
    assert health["warmed"] == ["MES", "MGC"] and health["log"] is None
    assert health["symbols"]["MES"]["bars"] == 3000
    assert health["symbols"]["MES"]["last_bar"] == world["bars"]["MES"].index[-1].isoformat(
        ).replace("+00:00", "Z")
    with pytest.raises(FactoryError, match="nothing to serve: set `serve.name"):
        build_service(make_cfg("task=serve"))
    with pytest.raises(FactoryError, match="not both"):
        build_service(make_cfg("task=serve", "serve.name=m", f"bundle={world['bundle']('a')}"))
    with pytest.raises(FactoryError, match="no live version of 'm'"):
        build_service(make_cfg("task=serve", "serve.name=m",
                               f"registry.path={tmp_path / 'empty'}"))
    with pytest.raises(FactoryError, match="`serve.history_bars` must be a positive int"):
        build_service(make_cfg("task=serve", f"bundle={world['bundle']('a')}",
                               "serve.history_bars=0"))
    with BackgroundServer(create_app(service)) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        with pytest.raises(FactoryError, match=rf"cannot listen on {host}:{port}.*serve.port="):
            check_port(host, int(port))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_process(run_dir: Path, *overrides: str, timeout: float = 180.0):
    """``python run.py task=serve ...`` in a subprocess on a free port: yields its URL; Ctrl-C
    (SIGINT) at the end, as a user stops it; the output is in ``run_dir/serve.out``."""
    port = free_port()
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / "serve.out"
    cmd = [sys.executable, "run.py", "task=serve", f"serve.port={port}",
           f"hydra.run.dir={run_dir}", *overrides]
    with open(out, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, f"task=serve exited {proc.returncode}:\n{out.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"task=serve did not start:\n{out.read_text()}"
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


PAGE = ROOT / "docs" / "serving.md"


def _doc_examples() -> list[tuple[str, str | None, str | None]]:
    """(curl block, kind of the block right after it, that block) from docs/serving.md."""
    blocks = re.findall(r"```(\w+)\n(.*?)```", PAGE.read_text(), re.S)
    out = []
    for k, (lang, body) in enumerate(blocks):
        lines = [x for x in body.splitlines() if x.strip() and not x.startswith(("  {", " "))]
        if lang == "bash" and lines and all(x.startswith("curl ") for x in lines):
            after = blocks[k + 1] if k + 1 < len(blocks) else (None, None)
            out.append((body, *after) if after[0] in ("json", "text") else (body, None, None))
    return out


def test_docs_curl_examples_run_as_written(world, tmp_path):
    """docs/serving.md's curl commands, run in order against a server set up as its quick
    start says (registry name mes_mgc_h20, warmed from the default synthetic data): each
    answer has the documented shape, status and error (numbers differ: another model)."""
    registry = Registry(tmp_path / "registry")
    registry.promote("mes_mgc_h20", world["bundle"]("a"), "docs")
    overrides = [f"registry.path={registry.root}", "serve.name=mes_mgc_h20",
                 "serve.warmup_from_data=true", "data.days=120", "serve.drift.every_seconds=null"]
    examples = _doc_examples()
    assert len(examples) >= 8
    with serving(world, tmp_path, *overrides) as (client, cfg):
        host = client.base_url.netloc.decode()
        for command, kind, shown in examples:
            run_it = subprocess.run(["bash", "-c", command.replace("localhost:8000", host)],
                                    capture_output=True, text=True, timeout=60)
            assert run_it.returncode == 0, (command, run_it.stderr)
            got = run_it.stdout
            if kind == "json":
                _same_shape(json.loads(got), json.loads(shown), command)
            elif kind == "text":
                want = [x for x in shown.splitlines() if "requests_total" in x]
                assert [x for x in got.splitlines() if "requests_total" in x] == want, got
                assert sum(float(x.rsplit(" ", 1)[1]) for x in got.splitlines()
                           if "predictions_total" in x) == 3


def _same_shape(got: dict, want: dict, command: str) -> None:
    assert set(got) == set(want), (command, got)
    if "error" in want:
        assert (got["error"], got["field"]) == (want["error"], want["field"]), got
        assert got["detail"].split(";")[-1] == want["detail"].split(";")[-1], got
    for key in ("predictions",):
        if key in want:
            assert [(a["symbol"], a["timestamp"], a["version"], set(a)) for a in got[key]] == [
                (a["symbol"], a["timestamp"], a["version"], set(a)) for a in want[key]], got
    if "symbols" in want:
        assert {s: (v["warm"], v["last_bar"]) for s, v in got["symbols"].items()} == {
            s: (v["warm"], v["last_bar"]) for s, v in want["symbols"].items()}, got


@pytest.mark.slow
def test_run_py_task_serve_end_to_end(world, tmp_path):
    """The real command line: refusals are one line and exit 2; a served bar is logged and
    the log is written when the server is stopped with Ctrl-C."""
    cmd = [sys.executable, "run.py", "task=serve", f"hydra.run.dir={tmp_path / 'refused'}"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.startswith("error: nothing to serve"), out.stderr
    assert "Traceback" not in out.stderr
    bundle = world["bundle"]("a")
    with serve_process(tmp_path / "run", f"bundle={bundle}", "serve.warmup_from_data=true") as url:
        port = url.rsplit(":", 1)[1]
        busy = subprocess.run([*cmd, f"bundle={bundle}", f"serve.port={port}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert busy.returncode == 2, busy.stderr
        assert f"error: cannot listen on 127.0.0.1:{port}" in busy.stderr, busy.stderr
        bar = {"symbol": "MES", "timestamp": "2024-05-06T00:00:00Z", "open": 4725.25,
               "high": 4726.5, "low": 4725.0, "close": 4726.25, "volume": 480}
        answer = httpx.post(url + "/bars", json=bar, timeout=60).json()["predictions"][0]
        assert answer["ready"] and answer["timestamp"] == bar["timestamp"]
    log = PredictionLog.read(tmp_path / "run" / "predictions_log.parquet").frame()
    assert len(log) == 1 and log["p_long"].iloc[0] == answer["p_long"]
    assert "stopped: 1 predictions in the log" in (tmp_path / "run" / "serve.out").read_text()

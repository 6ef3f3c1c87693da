"""``task=serve``: the live bundle over HTTP (FastAPI on uvicorn; docs/serving.md).

    python run.py task=serve registry.path=outputs/registry serve.name=<registry name>
    python run.py task=serve bundle=<run>/bundle serve.port=8001
    python run.py task=serve serve.name=<name> serve.warmup_from_data=true data=csv \\
        data.path=history.csv

Registry mode follows the name's live version (hot reload on ``task=promote`` /
``task=rollback``); ``bundle=`` serves one directory. Every default is in
``conf/task/serve.yaml``. Ctrl-C stops the server and writes the prediction log.
"""

from __future__ import annotations

import logging

import uvicorn
from omegaconf import DictConfig

from factory.config import build
from factory.errors import FactoryError
from factory.serving.app import create_app
from factory.serving.predlog import DriftCheck, LogSink
from factory.serving.reload import BundleSource
from factory.serving.server import check_port
from factory.serving.service import Service

log = logging.getLogger(__name__)


def build_service(cfg: DictConfig) -> Service:
    """The :class:`Service` of the config: its bundle, log, drift check, and (with
    ``serve.warmup_from_data``) every symbol warmed from the ``data`` group's bars."""
    s = cfg.serve
    source = BundleSource(bundle=cfg.get("bundle"), registry=cfg.registry.path,
                          name=s.get("name"), trusted_modules=cfg.get("trusted_modules"),
                          allow_version_mismatch=bool(cfg.get("allow_version_mismatch")))
    sink = LogSink(s.log.path) if s.log.path else None
    drift_every = s.drift.get("every_seconds") if sink is not None else None
    service = Service(
        source, threshold=s.threshold, history_bars=s.history_bars, max_bars=s.max_bars,
        sink=sink, poll_seconds=s.reload.poll_seconds,
        drift=DriftCheck(build(s.drift.monitor) if drift_every else None),
        flush_seconds=s.log.flush_seconds, drift_seconds=drift_every)
    if s.warmup_from_data:
        warm_from_data(service, cfg)
    return service


def warm_from_data(service: Service, cfg: DictConfig) -> None:
    """Warm each symbol the data holds on its last ``serve.history_bars`` bars."""
    bundle = service.deployment.bundle
    barset = build(cfg.data).load()
    source = f"serve.warmup_from_data (data={cfg.data.get('_target_', '').split('.')[-1]})"
    bundle.check_bars(barset, source=source)
    for sym in barset.symbols:
        service.warm_frame(sym, barset.bars[sym])


def run(cfg: DictConfig) -> float:
    host, port = str(cfg.serve.host), int(cfg.serve.port)
    check_port(host, port)
    service = build_service(cfg)
    health = service.health()
    log.info("serving %s (version %s, %s) on http://%s:%s: warm %s, cold %s; prediction log %s",
             health["bundle"], health["version"], health["bundle_id"], host, port,
             health["warmed"] or "none", [s for s in health["symbols"]
                                          if s not in health["warmed"]] or "none",
             cfg.serve.log.path)
    try:
        uvicorn.run(create_app(service), host=host, port=port,
                    log_level=str(cfg.serve.log_level), access_log=bool(cfg.serve.access_log))
    except SystemExit as exc:  # uvicorn exits 1 when it could not start; say so in one line
        if exc.code:
            raise FactoryError(f"the server on {host}:{port} stopped at start (exit "
                               f"{exc.code}; see its log above)") from None
    return 0.0

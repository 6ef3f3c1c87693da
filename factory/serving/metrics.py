"""Prometheus metrics of the server (prometheus-client, one registry per server).

=========================================  ================================================
``factory_serve_requests_total``           requests by ``endpoint`` and ``status``
``factory_serve_request_seconds``          latency histogram by ``endpoint`` and ``status``
``factory_serve_predictions_total``        predictions by ``symbol`` and predicted ``class``
``factory_serve_stage_seconds``            per bar in the streamer: ``features`` / ``model``
``factory_serve_bundle_info``              name, version and id of the bundle serving
``factory_serve_bundle_version``           its registry version (-1: a fixed bundle)
``factory_serve_reloads_total``            hot reloads by ``result`` (ok / failed)
``factory_serve_bars_needed``              bars each symbol still needs before it answers
``factory_serve_psi_alert_level``          latest drift grade: -1 not graded, 0 ok, 1 warn,
                                           2 alert (the worst PSI over features and classes)
``factory_serve_psi_max``                  the largest PSI of the latest drift check
``factory_serve_log_rows``                 rows in the prediction log
``process_*``                              CPU, memory, open files of the server process
=========================================  ================================================

Paths other than the API's own are counted under ``endpoint="other"`` (bounded labels).
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)

ENDPOINTS = frozenset({"/bars", "/warmup", "/health", "/metrics"})
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25,
           0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The collectors of one server, in their own :class:`CollectorRegistry`."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("factory_serve_requests", "HTTP requests by endpoint and "
                                "status", ["endpoint", "status"], registry=r)
        self.latency = Histogram("factory_serve_request_seconds", "HTTP request latency by "
                                 "endpoint and status", ["endpoint", "status"],
                                 buckets=BUCKETS, registry=r)
        self.predictions = Counter("factory_serve_predictions", "Served predictions by "
                                   "symbol and predicted class", ["symbol", "class"],
                                   registry=r)
        self.stage = Histogram("factory_serve_stage_seconds", "Streamer time per bar: "
                               "features or model", ["stage"], buckets=BUCKETS, registry=r)
        self.bundle = Info("factory_serve_bundle", "The bundle serving", registry=r)
        self.version = Gauge("factory_serve_bundle_version", "Registry version serving (-1: "
                             "a fixed bundle directory)", registry=r)
        self.reloads = Counter("factory_serve_reloads", "Hot reloads by result", ["result"],
                               registry=r)
        self.needed = Gauge("factory_serve_bars_needed", "Bars a symbol still needs before "
                            "it answers", ["symbol"], registry=r)
        self.psi_level = Gauge("factory_serve_psi_alert_level", "Latest drift grade of the "
                               "served predictions: -1 not graded, 0 ok, 1 warn, 2 alert",
                               registry=r)
        self.psi_max = Gauge("factory_serve_psi_max", "Largest PSI of the latest drift "
                             "check", registry=r)
        self.log_rows = Gauge("factory_serve_log_rows", "Rows in the prediction log",
                              registry=r)
        ProcessCollector(registry=r)
        self.psi_level.set(-1)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        endpoint = endpoint if endpoint in ENDPOINTS else "other"
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint, str(status)).observe(seconds)


class MetricsMiddleware:
    """ASGI middleware: count and time every HTTP request (the status actually sent; 500
    when the app raised before answering)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe(scope["path"], status, time.perf_counter() - started)

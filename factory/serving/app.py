"""The HTTP shell (FastAPI): four endpoints over a :class:`~factory.serving.service.Service`.

=================  =========================================================================
``POST /bars``     one bar (a JSON object) or several (an array): ``{"predictions": [...]}``,
                   one answer per bar, in order
``POST /warmup``   past bars, appended to each symbol's history (``?reset=true``: replacing
                   it): ``{"symbols": {SYM: {warm, needed, bars, last_bar}}}``
``GET /health``    liveness, the bundle and version serving, warm symbols, reload / log /
                   drift state
``GET /metrics``   Prometheus text format (:mod:`factory.serving.metrics`)
=================  =========================================================================

A refused request answers ``{"error": <code>, "field": <field>, "detail": <message>}`` with a
4xx status (docs/serving.md lists them). Bars are parsed on the event loop; the streamers
run in the thread pool, so a slow bar never blocks ``/health`` or ``/metrics``.
"""

from __future__ import annotations

import math
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from factory import __version__
from factory.serving.metrics import MetricsMiddleware
from factory.serving.requests import Bar, ServeError, parse_bars
from factory.serving.service import Service

_BARS = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "anyOf": [Bar.model_json_schema(), {"type": "array", "items": Bar.model_json_schema()}]}}}}}


def jsonable(value):
    """``value`` with every non-finite float as ``null`` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def create_app(service: Service) -> FastAPI:
    """The API of ``service``; its background thread runs while the app is up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(title="factory serving", version=__version__, lifespan=lifespan,
                  description="Predictions of the live bundle, one bar at a time "
                              "(docs/serving.md).")
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)

    @app.exception_handler(ServeError)
    async def refused(request: Request, exc: ServeError) -> JSONResponse:
        return JSONResponse(jsonable(exc.body()), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"][1:]) or "request"
        return JSONResponse({"error": "invalid_query", "field": field, "detail": (
            f"{field}: {err['msg']} (got {err.get('input')!r}); e.g. /warmup?reset=true")},
            status_code=422)

    @app.post("/bars", openapi_extra=_BARS, summary="Predict new bars")
    async def bars(request: Request) -> JSONResponse:
        parsed, many = parse_bars(await request.body(), service.max_bars)
        out = await run_in_threadpool(service.post_bars, parsed, many)
        return JSONResponse({"predictions": jsonable(out)})

    @app.post("/warmup", openapi_extra=_BARS, summary="Feed past bars")
    async def warmup(request: Request, reset: bool = False) -> JSONResponse:
        parsed, many = parse_bars(await request.body())
        out = await run_in_threadpool(service.post_warmup, parsed, many, reset)
        return JSONResponse({"symbols": jsonable(out)})

    @app.get("/health", summary="Liveness, bundle, version, warm symbols")
    async def health() -> JSONResponse:
        return JSONResponse(jsonable(service.health()))

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        service.refresh_gauges()
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    return app

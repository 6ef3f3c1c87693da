"""Serving: the live bundle over HTTP (``task=serve``; docs/serving.md).

``requests`` parses and checks request bodies; ``feeds`` holds each symbol's recent bars and
each loaded version's streamers; ``service`` answers bars, warm-ups and health without HTTP;
``reload`` watches the registry and swaps versions; ``predlog`` appends every prediction to
the prediction log and grades drift; ``metrics`` is the Prometheus side; ``app`` the FastAPI
shell; ``server`` runs it on uvicorn.
"""

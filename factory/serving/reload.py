"""Where the bundle comes from, hot reload, and the server's background thread.

**Hot reload** (registry mode: ``registry.path`` + ``serve.name``). The background thread
reads the name's ``live.json`` every ``serve.reload.poll_seconds``. When ``task=promote``
(or ``task=rollback``) changes the live version, :meth:`Reloader.reload`:

1. loads the new version (:meth:`Bundle.load <factory.bundle.reader.Bundle.load>`: hashes,
   format, library versions) and checks it can take over: same bar size, every symbol that
   has bars is one it serves;
2. warms a new streamer per symbol on a copy of the symbol's recent bars, while requests
   go on being answered by the old version;
3. feeds the new streamers the bars that arrived meanwhile (without locks, until at most a
   few are left);
4. takes every symbol's lock, feeds the last few, swaps the deployment, lets go.

Requests wait during step 4 (milliseconds) and none is dropped; each is answered wholly by
one version, and every answer after the swap by the new one. A version that fails to load
or to take over is not retried until the live pointer changes again: the old version keeps
serving, and the error is logged and shown in ``/health`` (``reload.error``) until the
registry points at a version that serves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from factory.bundle.reader import Bundle
from factory.errors import FactoryError
from factory.registry import Registry
from factory.serving.feeds import Deployment, SymbolFeed

log = logging.getLogger(__name__)


class BundleSource:
    """A fixed bundle directory (``bundle=<dir>``), or the live version of a registry name
    (``registry.path`` + ``serve.name``), which is watched for changes."""

    def __init__(self, bundle: str | Path | None = None, registry: str | Path | None = None,
                 name: str | None = None, trusted_modules=(),
                 allow_version_mismatch: bool = False) -> None:
        if bool(bundle) == bool(name):
            raise FactoryError("serve one bundle: set `serve.name=<registry name>` (with "
                               "`registry.path`; `task=registry` lists the names) or "
                               "`bundle=<run>/bundle`, not both" if bundle else
                               "nothing to serve: set `serve.name=<registry name>` (with "
                               "`registry.path`; `task=registry` lists the names) or "
                               "`bundle=<run>/bundle`")
        self.bundle = Path(bundle) if bundle else None
        self.registry = Registry(registry) if name else None
        self.name = str(name) if name else None
        self.trusted = list(trusted_modules or [])
        self.allow_version_mismatch = bool(allow_version_mismatch)

    @property
    def watches(self) -> bool:
        return self.registry is not None

    def live(self) -> int | None:
        """The registry's live version (None for a fixed bundle)."""
        return self.registry.live(self.name) if self.registry is not None else None

    def load(self, version: int | None) -> Bundle:
        path = self.registry.path(self.name, version) if self.registry is not None \
            else self.bundle
        return Bundle.load(path, trusted_modules=self.trusted,
                           allow_version_mismatch=self.allow_version_mismatch)

    def describe(self) -> str:
        if self.registry is None:
            return f"bundle {self.bundle}"
        return f"registry {self.registry.root} name {self.name}"


class Reloader:
    """Hot reload of a :class:`~factory.serving.service.Service` (see the module doc)."""

    def __init__(self, service) -> None:
        self.service = service
        self.error: dict | None = None
        self.failed: int | None = None
        self.reloads, self.last_check, self.last_seconds = 0, None, None

    def status(self) -> dict:
        return {"watching": self.service.source.watches, "last_check": self.last_check,
                "reloads": self.reloads, "last_seconds": self.last_seconds,
                "error": self.error}

    def poll(self) -> bool:
        """Reload if the live version changed (and did not fail before); True if it did."""
        self.last_check = time.time()
        live = self.service.source.live()
        current = self.service.deployment.version
        if live == current:
            self.error, self.failed = None, None
            return False
        if live is None:
            self.error = {"version": None, "at": self.last_check, "message": (
                f"{self.service.source.describe()} has no live version any more; still "
                f"serving version {current}")}
            return False
        if live == self.failed:
            return False
        return self.reload(live)

    def reload(self, version: int) -> bool:
        service = self.service
        started = time.perf_counter()
        with service.admin_lock:
            old = service.deployment
            try:
                new, marks = self._prepare(version)
                for _ in range(3):  # catch up while requests go on; stop when few are left
                    if self._catch_up(new, marks) <= 2:
                        break
                with service.locked(list(service.feeds)):
                    self._catch_up(new, marks)
                    service.deployment = new
            except Exception as exc:  # noqa: BLE001  (reported in /health and the log)
                return self._failed(version, old, exc)
        self.reloads += 1
        self.error, self.failed = None, None
        self.last_seconds = round(time.perf_counter() - started, 3)
        service.publish(new)
        service.metrics.reloads.labels("ok").inc()
        log.info("hot reload: %s version %s -> %s in %.2fs (bundle %s)", new.name, old.version,
                 version, self.last_seconds, new.id)
        return True

    def _failed(self, version: int, old: Deployment, exc: Exception) -> bool:
        self.failed = version
        kind = "" if isinstance(exc, FactoryError) else f"{type(exc).__name__}: "
        self.error = {"version": version, "at": time.time(), "message": (
            f"version {version} not loaded, still serving version {old.version}: {kind}{exc}")}
        self.service.metrics.reloads.labels("failed").inc()
        if isinstance(exc, FactoryError):
            log.error("hot reload: %s", self.error["message"])
        else:
            log.exception("hot reload: %s", self.error["message"])
        return False

    def _prepare(self, version: int) -> tuple[Deployment, dict[str, int]]:
        """Load ``version``, check it can take over, warm its streamers on the recent bars;
        returns it and, per symbol, how many bars its streamer has seen."""
        service, old = self.service, self.service.deployment
        new = Deployment(service.source.load(version), version)
        if new.bundle.timeframe != old.bundle.timeframe:
            raise FactoryError(f"version {version} reads {new.bundle.timeframe} bars, this "
                               f"server holds {old.bundle.timeframe} bars; restart the server "
                               f"to serve it")
        feeds = dict(service.feeds)
        for sym in new.symbols:
            feeds.setdefault(sym, SymbolFeed(sym, service.history_bars))
        lost = [s for s, f in feeds.items() if len(f) and s not in new.symbols]
        if lost:
            raise FactoryError(f"version {version} does not serve {lost} (it serves "
                               f"{new.symbols}), which this server has bars of; restart "
                               f"the server to drop them")
        marks = {}
        for sym, feed in feeds.items():
            if sym not in new.symbols:
                continue
            with feed.lock:
                history, marks[sym] = feed.frame(), feed.seen
            new.streamers[sym] = new.warmed(sym, history)
            if old.needed(sym) == 0 and new.needed(sym) > 0:
                raise FactoryError(
                    f"version {version} needs {new.bundle.warmup() + 1} bars of history for "
                    f"{sym}, the server holds {len(history)}; raise `serve.history_bars` "
                    f"(now {service.history_bars}) and restart, or POST /warmup?reset=true "
                    f"with a longer history after the reload")
        service.feeds = feeds
        return new, marks

    def _catch_up(self, new: Deployment, marks: dict[str, int]) -> int:
        """Feed ``new``'s streamers the bars that arrived since ``marks``; returns how many."""
        fed = 0
        for sym, streamer in new.streamers.items():
            feed = self.service.feeds[sym]
            frame = feed.frame(since=marks[sym])
            for k in range(len(frame)):
                new.update(sym, frame.iloc[[k]])
                if streamer.timings:
                    streamer.timings.pop()
            marks[sym] += len(frame)
            fed += len(frame)
        return fed


class Housekeeper:
    """One daemon thread for the periodic work: reload polls, log flushes, drift checks.
    Each task's failure is logged and shown in ``/health``; the thread goes on."""

    def __init__(self, tasks: dict[str, tuple[float | None, Callable[[], object]]]) -> None:
        self.tasks = {k: (float(every), fn) for k, (every, fn) in tasks.items()
                      if every is not None and float(every) > 0}
        self.errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="factory-serve-housekeeper",
                                        daemon=True)

    def start(self) -> None:
        if self.tasks:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _run(self) -> None:
        due = {k: time.monotonic() + every for k, (every, _) in self.tasks.items()}
        while not self._stop.is_set():
            name = min(due, key=due.get)
            if self._stop.wait(max(due[name] - time.monotonic(), 0.0)):
                return
            every, fn = self.tasks[name]
            try:
                fn()
                self.errors.pop(name, None)
            except Exception as exc:  # noqa: BLE001  (logged, shown in /health, retried)
                self.errors[name] = f"{type(exc).__name__}: {exc}"
                log.exception("serving background task %s failed (retried in %.0fs)", name,
                              every)
            due[name] = time.monotonic() + every

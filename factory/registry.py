"""The model registry: versioned bundles per name, a live pointer, an append-only history.

Layout under ``registry.path`` (default ``outputs/registry/``)::

    <name>/versions/<n>/     a copy of the promoted bundle (n = 1, 2, ...)
    <name>/live.json         {"version": n, "since": ...}: what serves
    <name>/history.jsonl     one JSON line per promote / rollback: when, who, why, from which
                             run, the gate's results (append-only)
    <name>/.lock             held while the name is changed

Every change takes an exclusive ``flock`` on the name's lock file, copies into a temporary
directory and renames it into place, and replaces ``live.json`` atomically, so two promotes
at once (two processes) each get their own version and the pointer is never half-written.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from factory.errors import FactoryError

LIVE, HISTORY, VERSIONS = "live.json", "history.jsonl", "versions"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _user() -> str:
    """Who made a change: $FACTORY_USER, else the login name from the environment."""
    return os.environ.get("FACTORY_USER") or getpass.getuser()


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Registry:
    """Versions, live pointer and history of named bundles under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise FactoryError(f"registry name {name!r} is not a plain name (e.g. "
                               f"`name=xgboost_h20_MES-MGC`)")
        return self.root / name

    @contextmanager
    def _locked(self, name: str) -> Iterator[Path]:
        folder = self._dir(name)
        (folder / VERSIONS).mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / VERSIONS).is_dir())

    def versions(self, name: str) -> list[int]:
        folder = self._dir(name) / VERSIONS
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())

    def live(self, name: str) -> int | None:
        path = self._dir(name) / LIVE
        return int(json.loads(path.read_text())["version"]) if path.is_file() else None

    def path(self, name: str, version: int | None = None) -> Path:
        """The bundle directory of ``version`` (default: the live one)."""
        version = self.live(name) if version is None else version
        if version is None:
            known = ", ".join(self.names()) or "none yet"
            raise FactoryError(f"registry {self.root}: no live version of {name!r} (names: "
                               f"{known}); promote one with `task=promote bundle=<dir>`")
        folder = self._dir(name) / VERSIONS / str(version)
        if not folder.is_dir():
            raise FactoryError(f"registry {self.root}: {name!r} has no version {version} "
                               f"(versions: {self.versions(name)})")
        return folder

    def history(self, name: str) -> list[dict]:
        path = self._dir(name) / HISTORY
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def _append(self, folder: Path, record: dict) -> None:
        with open(folder / HISTORY, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _set_live(self, folder: Path, version: int) -> None:
        _write_atomic(folder / LIVE, json.dumps({"version": version, "since": _now()}))

    def promote(self, name: str, bundle: Path, reason: str, run: str | None = None,
                gate: dict | None = None) -> int:
        """Copy ``bundle`` in as the next version and make it live; returns the version."""
        bundle = Path(bundle)
        with self._locked(name) as folder:
            version = max(self.versions(name), default=0) + 1
            tmp = Path(tempfile.mkdtemp(dir=folder / VERSIONS, prefix=".incoming-"))
            shutil.copytree(bundle, tmp, dirs_exist_ok=True)
            os.replace(tmp, folder / VERSIONS / str(version))
            previous = self.live(name)
            self._set_live(folder, version)
            self._append(folder, {"when": _now(), "who": _user(), "action": "promote",
                                  "version": version, "previous": previous, "why": reason,
                                  "from_run": run, "bundle": str(bundle.resolve()),
                                  "gate": gate or {}})
        return version

    def rollback(self, name: str, reason: str = "") -> int:
        """Make live again the version that was live when the current one was promoted."""
        with self._locked(name) as folder:
            current = self.live(name)
            previous = None
            for record in reversed(self.history(name)):
                if record.get("action") == "promote" and record.get("version") == current:
                    previous = record.get("previous")
                    break
            if previous is None:
                raise FactoryError(f"registry {self.root}: {name!r} has no earlier live "
                                   f"version to roll back to (live: {current})")
            self._set_live(folder, int(previous))
            self._append(folder, {"when": _now(), "who": _user(), "action": "rollback",
                                  "version": int(previous), "previous": current,
                                  "why": reason})
        return int(previous)

"""Optuna storages chosen by URL, with heartbeats and retries of trials whose worker died.

==================================  ============================================  ==========
``storage``                          what                                          heartbeats
==================================  ============================================  ==========
null (default)                       SQLite ``<storage_dir>/<study>.db``: one       yes
                                     process (or a few, on one local disk)
``sqlite:///path.db``                the same at a chosen path                     yes
``journal:///path/study.log``        JournalStorage, file backend: several         no
                                     processes on one machine (or an NFS mount)
``postgresql://user@host:5432/db``   RDBStorage on PostgreSQL: workers on several   yes
                                     machines (needs a driver: psycopg)
``mysql+pymysql://...``              RDBStorage on MySQL (driver not included)     yes
==================================  ============================================  ==========

With heartbeats, a RUNNING trial whose worker stops beating for ``grace_period`` seconds
(killed, machine lost) is marked FAIL by the next worker that looks
(:func:`optuna.storages.fail_stale_trials`) and re-queued with the same parameters by
``RetryHeartbeatStaleTrialCallback`` (``RetryFailedTrialCallback`` before optuna 4.9), so
the study still reaches ``n_trials``.
Optuna's JournalStorage has no heartbeat: a dead worker's trial stays RUNNING there.
"""

from __future__ import annotations

import random
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

JOURNAL_PREFIX = "journal:"


def journal_path(url: str) -> Path | None:
    """The file of a ``journal:`` URL (``journal:///abs/path`` or ``journal:rel/path``)."""
    if not url.startswith(JOURNAL_PREFIX):
        return None
    rest = url[len(JOURNAL_PREFIX):]
    rest = rest[2:] if rest.startswith("//") else rest  # journal:///abs -> /abs
    return Path(rest).expanduser()


def shown(url: str) -> str:
    """A storage URL for logs and files: the password of a database URL masked."""
    if journal_path(url) is not None or "@" not in url:
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def make_storage(url: str, heartbeat_interval: int | None, grace_period: int | None,
                 max_retry: int | None) -> optuna.storages.BaseStorage:
    """An optuna storage for ``url`` (see the module table)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    # optuna >= 4.9 renamed RetryFailedTrialCallback (deprecated, same behaviour)
    retry_cls = (getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
                 or optuna.storages.RetryFailedTrialCallback)

    path = journal_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # several local processes: wait for SQLite's write lock
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if heartbeat_interval:
            kwargs.update(heartbeat_interval=int(heartbeat_interval),
                          grace_period=int(grace_period) if grace_period else None,
                          heartbeat_stale_trial_callback=retry_cls(max_retry=max_retry))
        return _rdb_storage(RDBStorage, url, kwargs)


def _rdb_storage(cls: Any, url: str, kwargs: dict[str, Any], attempts: int = 5) -> Any:
    """RDBStorage, retried when workers started together race to create its tables (one
    wins; the others hit a unique or "already exists" error and find the tables next time)."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            return cls(url, **kwargs)
        except (IntegrityError, OperationalError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random())


def heartbeat_enabled(study: optuna.Study) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(study._storage)


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark trials of dead workers FAIL (and queue their retries); no-op without heartbeats."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class Heartbeats:
    """Beat for trials while their jobs run (Optuna's own heartbeat threads, as in
    ``Study.optimize``): if this process dies, the beats stop and other workers retry the
    trials. :meth:`add` right after ``ask``: a trial killed before its first beat has no
    heartbeat, and Optuna never counts it as stale."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self.threads: list[Any] = []

    def add(self, trial: optuna.Trial) -> None:
        from optuna.storages._heartbeat import get_heartbeat_thread

        thread = get_heartbeat_thread(trial._trial_id, self.study._storage)
        thread.start()
        self.threads.append(thread)

    def __enter__(self) -> Heartbeats:
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self.threads:
            thread.join()


def ask(study: optuna.Study, search: dict[str, Any]) -> optuna.Trial:
    """``study.ask`` without Optuna's "heartbeat is meant for optimize" warning: the sweeper
    runs the heartbeat itself (:func:`heartbeats`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask(search)

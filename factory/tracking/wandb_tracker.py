"""Weights & Biases tracker, offline by default so nothing needs (or waits on) a network.

An offline run lands in ``<run_dir>/wandb/offline-run-*``; ``wandb sync <that dir>`` uploads
it later. ``mode=online`` tracks live. Runs of one multirun or sweep share a W&B ``group``
(the study name for a sweep, so several workers on one study share it too); in a sweep the
run's config also holds ``sweep: {study, trial, overrides}``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from factory.errors import FactoryError
from factory.tracking.base import flatten, sweep_context

log = logging.getLogger(__name__)


class WandbTracker:
    def __init__(self, project: str = "factory", entity: str | None = None,
                 mode: str = "offline", group: str | None = None,
                 tags: list[str] | None = None) -> None:
        if mode not in ("offline", "online", "disabled"):
            raise FactoryError(
                f"`tracker.mode` must be offline, online or disabled, got {mode!r}"
            )
        self.project = project
        self.entity = entity
        self.mode = mode
        self.group = group
        self.tags = list(tags or [])

    def start(self, run_dir: Path, config: dict, name: str, tags: list[str],
              group: str | None) -> None:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        sweep = sweep_context()
        if sweep is not None:
            config = {**config, "sweep": sweep}
        self.run_ = wandb.init(
            project=self.project, entity=self.entity, mode=self.mode, dir=str(run_dir),
            config=config, name=name, tags=sorted(set(self.tags + tags)),
            group=self.group or group, reinit="finish_previous",
            settings=wandb.Settings(console="off", x_disable_stats=True),
        )
        log.info("wandb run %s (%s) in %s", self.run_.id, self.mode, run_dir / "wandb")

    def log_metrics(self, metrics: dict) -> None:
        flat = flatten(metrics)
        self.run_.log(flat)
        self.run_.summary.update(flat)

    def log_images(self, paths: list[Path]) -> None:
        import wandb

        if paths:
            self.run_.log({f"plots/{Path(p).stem}": wandb.Image(str(p)) for p in paths})

    def finish(self) -> None:
        self.run_.finish()

"""The experiment tracker (``conf/tracker``: W&B offline by default, or none) as an output."""

from __future__ import annotations

from omegaconf import OmegaConf

from factory.outputs.base import RunResult


class TrackerRun:
    """Mirrors the run to ``tracker``: config, val/test metrics and the plots."""

    def __init__(self, tracker) -> None:
        self.tracker = tracker

    def write(self, result: RunResult) -> None:
        self.tracker.start(result.out_dir, OmegaConf.to_container(result.cfg, resolve=True),
                           name=result.title, tags=result.tags, group=result.group)
        self.tracker.log_metrics({k: v for k, v in result.metrics.items()
                                  if k in ("val", "test")})
        self.tracker.log_images(result.plots)
        self.tracker.finish()

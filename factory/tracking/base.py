"""Tracker contract. The run directory is always written; a tracker mirrors it elsewhere."""

from __future__ import annotations

from pathlib import Path


class NullTracker:
    """``tracker=none``: no experiment tracking beyond the run directory."""

    def start(self, run_dir: Path, config: dict, name: str, tags: list[str],
              group: str | None) -> None:
        return None

    def log_metrics(self, metrics: dict[str, float]) -> None:
        return None

    def log_images(self, paths: list[Path]) -> None:
        return None

    def finish(self) -> None:
        return None


def flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    """``{"val": {"f1": 1}}`` -> ``{"val/f1": 1}``, dropping non-numeric values."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = value
    return out

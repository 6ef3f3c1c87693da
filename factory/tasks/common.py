"""What several tasks share: the bundle named by the config, the run directory."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from factory.bundle.reader import Bundle
from factory.errors import FactoryError


def load_bundle(cfg: DictConfig) -> Bundle:
    """``cfg.bundle`` (a bundle, or a run directory holding one), loaded and checked
    (hashes, format, library versions)."""
    if not cfg.get("bundle"):
        raise FactoryError("`bundle` is not set: pass the bundle directory, e.g. "
                           "`bundle=outputs/runs/<date>/<time>_xgboost_h20/bundle`")
    path = Path(cfg.bundle)
    if not (path / "manifest.json").is_file() and (path / "bundle" / "manifest.json").is_file():
        path = path / "bundle"  # a run directory: its bundle
    return Bundle.load(path, trusted_modules=list(cfg.get("trusted_modules") or []),
                       allow_version_mismatch=bool(cfg.get("allow_version_mismatch", False)))


def run_dir(cfg: DictConfig) -> Path:
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out

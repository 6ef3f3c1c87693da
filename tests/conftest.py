"""Shared fixtures: compose the real config through Hydra's compose API on tiny data."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from factory.config import resolve_base_models

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Small enough to run in seconds, large enough that every split survives purge + embargo.
# The core feature set keeps the many end-to-end runs fast; tests/test_feature_sets.py and
# test_default_feature_set_end_to_end cover the models' default (boosting_optimal).
TINY = ["data.days=21", "cv.embargo_bars=100", "cv.purge_bars=20", "tracker=none",
        "evaluation.plots=false", "features=core"]


def _model_test_overrides(overrides: tuple[str, ...]) -> list[str]:
    """The chosen model's ``# test-overrides: a=b c=d`` comment line: group choices its tests
    need instead of the tiny ones (a rule that reads fixed columns needs its own feature set;
    ``features=core`` would be the wrong input, not a smaller one)."""
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), None)
    path = CONF / "model" / f"{model}.yaml"
    if not model or not path.is_file():
        return []
    for line in path.read_text().splitlines():
        if line.startswith("# test-overrides:"):
            return line[len("# test-overrides:"):].split()
    return []


def compose_config(tmp_path: Path, *overrides: str, tiny: bool = True) -> DictConfig:
    """The composed config with run and cache dirs under ``tmp_path``."""
    base = [f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}",
            "name=test"]
    small = list(TINY if tiny else [])
    overrides = (*_model_test_overrides(overrides), *overrides)
    if any(o.startswith("features=") for o in overrides):
        small = [o for o in small if not o.startswith("features=")]
    if any(o.startswith("data=") and o != "data=synthetic" for o in overrides):
        small = [o for o in small if not o.startswith("data.days")]  # file sources: no days
    args = base + small + list(overrides)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=args)
        return resolve_base_models(cfg, "config", args)  # as run.py does (ensemble bases)


@pytest.fixture
def make_cfg(tmp_path):
    def _make(*overrides: str, tiny: bool = True) -> DictConfig:
        return compose_config(tmp_path, *overrides, tiny=tiny)

    return _make


def model_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def yaml_test_sizes(yaml_path: Path) -> dict:
    """A component YAML's own test sizing: its ``# tests: {key: value, ...}`` comment line
    (dotted keys allowed), read by tests only (Hydra never sees a comment). Adding a component
    therefore touches its class and its YAML, nothing in tests/."""
    import yaml

    for line in Path(yaml_path).read_text().splitlines():
        if line.startswith("# tests:"):
            return dict(yaml.safe_load(line[len("# tests:"):]) or {})
    return {}

"""Out-of-fold store: a model's OOF and holdout predictions, reusable by later ensembles.

Entries live under ``<cache_dir>/oof/<phase1_key>/<model_key>/``: ``oof.parquet`` (one
prediction per CV row, from a model that never trained on it), ``val.parquet`` and
``test.parquet`` (the model fitted on the training block), ``model/`` (that fitted model:
native files, adapter state and a hashed manifest, so an ensemble over stored bases can save
and reload them) and ``entry.json`` (model name, resolved config, fold metrics).
``model_key`` hashes everything that decides the predictions besides Phase 1: model,
adapter, trainer (torch), cv splitter and seed. Writes are atomic (temporary directory, then
rename), so a crashed run never leaves half an entry.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.cache import config_hash

FILES = ("oof", "blend", "val", "test")


MODEL_DIR = "model"


def model_key(cfg: DictConfig, cv: DictConfig | None = None) -> str:
    """Hash of the settings (besides Phase 1) that decide a model's predictions; ``cv``: the
    splitter that made the OOF (default: ``cfg.cv``)."""
    trainer = cfg.get("trainer") if "trainer" in cfg.model else None
    return config_hash("oof-v2", cfg.model, cfg.adapter, trainer, cfg.cv if cv is None else cv,
                       cfg.seed)


@dataclass
class OOFEntry:
    name: str
    frames: dict[str, pd.DataFrame]
    info: dict
    model_path: Path | None = None  # the fitted model's directory (ModelPredictor.load)


class OOFStore:
    def __init__(self, cache_dir: str | Path) -> None:
        self.root = Path(cache_dir) / "oof"

    def path(self, phase1_key: str, key: str) -> Path:
        return self.root / phase1_key / key

    def exists(self, phase1_key: str, key: str) -> bool:
        return (self.path(phase1_key, key) / "entry.json").is_file()

    def load(self, phase1_key: str, key: str) -> OOFEntry:
        path = self.path(phase1_key, key)
        info = json.loads((path / "entry.json").read_text())
        frames = {f: pd.read_parquet(path / f"{f}.parquet") for f in FILES
                  if (path / f"{f}.parquet").is_file()}
        model = path / MODEL_DIR
        return OOFEntry(info["name"], frames, info, model if model.is_dir() else None)

    def store(self, phase1_key: str, key: str, name: str, frames: dict[str, pd.DataFrame],
              info: dict, predictor=None) -> Path:
        """Write an entry; ``predictor`` (fitted on the training block) is saved in ``model/``."""
        final = self.path(phase1_key, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
        for f, frame in frames.items():
            frame.to_parquet(tmp / f"{f}.parquet", index=False)
        if predictor is not None:
            predictor.save(tmp / MODEL_DIR)
        (tmp / "entry.json").write_text(json.dumps({"name": name, **info}, indent=2,
                                                   default=str))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        return final


def resolved(cfg: DictConfig) -> dict:
    """The model part of a config, resolved, for an entry's record."""
    return OmegaConf.to_container(cfg.model, resolve=True)

"""Saving and loading fitted models safely: native files + a JSON manifest with hashes.

Nothing is ever unpickled. ``load_model`` reads the manifest, checks every file's SHA-256,
imports the model class only from the ``factory.`` package, and calls its ``load_native``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import platform
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from factory import __version__
from factory.dataset import CLASSES
from factory.errors import FactoryError
from factory.models.base import BaseModel

MANIFEST = "manifest.json"
ADAPTER = "adapter.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _target(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _jsonable(value):
    """JSON-able copy; callables and components become Hydra nodes (``_target_`` + kwargs)."""
    if isinstance(value, DictConfig | ListConfig):
        return _jsonable(OmegaConf.to_container(value, resolve=True))
    if isinstance(value, functools.partial):
        return {"_target_": _target(value.func), "_partial_": True,
                **_jsonable(dict(value.keywords))}
    if hasattr(value, "get_params") and not isinstance(value, type):
        return {"_target_": _target(type(value)), **_jsonable(value.get_params(deep=False))}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_model(model: BaseModel, path: Path, feature_names: list[str], extra: dict | None = None,
               adapter_state: dict | None = None) -> Path:
    """Write ``model`` into ``path`` (native files + ``manifest.json``).

    ``adapter_state`` (the fitted adapter: scaler, class weights) is written as
    ``adapter.json`` and hashed with the model files, so predictions can be reproduced from
    raw features.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    files = list(model.save_native(path))
    if adapter_state is not None:
        (path / ADAPTER).write_text(json.dumps(_jsonable(adapter_state), indent=2))
        files.append(ADAPTER)
    cls = type(model)
    manifest = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "family": model.family,
        "input_kind": model.input_kind,
        "params": _jsonable(model.get_params(deep=False)),
        "state": _jsonable(model.native_state()),
        "classes": list(CLASSES),
        "features": list(feature_names),
        "files": {name: _sha256(path / name) for name in files},
        "factory_version": __version__,
        "python": platform.python_version(),
        **(extra or {}),
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return path / MANIFEST


def load_model(path: Path) -> tuple[BaseModel, dict]:
    """Load a model saved by :func:`save_model`; returns (model, manifest)."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise FactoryError(f"{path}: no {MANIFEST}; not a factory model directory")
    manifest = json.loads(mpath.read_text())
    for name, digest in manifest["files"].items():
        fpath = path / name
        if not fpath.is_file():
            raise FactoryError(f"{fpath}: listed in the manifest but missing")
        if _sha256(fpath) != digest:
            raise FactoryError(f"{fpath}: SHA-256 differs from the manifest (file altered)")
    module, _, name = manifest["class"].rpartition(".")
    if not module.startswith("factory."):
        raise FactoryError(f"{mpath}: refusing to import model class from {module!r}")
    cls = getattr(importlib.import_module(module), name)
    return cls.load_native(path, manifest["params"], manifest.get("state", {})), manifest


def load_adapter(path: Path):
    """The fitted adapter saved beside a model (``adapter.json``), rebuilt without refitting.

    Call after :func:`load_model` (which verifies the file's hash). The class is imported
    only from ``factory.adapters``.
    """
    state = json.loads((Path(path) / ADAPTER).read_text())
    target = str(state.get("class", ""))
    module, _, name = target.rpartition(".")
    if not module.startswith("factory.adapters."):
        raise FactoryError(f"{Path(path) / ADAPTER}: refusing adapter class {target!r}")
    return getattr(importlib.import_module(module), name).from_state(state)

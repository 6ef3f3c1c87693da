"""Saving and loading fitted models safely: native files + a JSON manifest with hashes.

Nothing is ever unpickled. ``load_model`` reads the manifest, checks every file's SHA-256,
imports the model class only from the ``factory.`` package or from a module the user's
config explicitly trusts (``trusted_modules``, e.g. ``[my_models]``: their own package), and
calls its ``load_native``. A class from anywhere else is refused before it is imported.
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
from factory.models.base import ModelHooks

MANIFEST = "manifest.json"
ADAPTER = "adapter.json"


def trusted_import(target: str, trusted_modules, what: str, where: Path):
    """``getattr(import_module(module), name)`` for ``target`` when its module is ``factory.*``
    or inside one of ``trusted_modules``; otherwise refuse, saying how to trust it."""
    module, _, name = str(target).rpartition(".")
    roots = ["factory", *[str(m) for m in (trusted_modules or ())]]
    if not any(module == r or module.startswith(f"{r}.") for r in roots):
        top = module.split(".")[0] or "?"
        raise FactoryError(
            f"{where}: refusing to import {what} {target!r}: only classes from factory or a "
            f"trusted module are loaded; if you trust it, add its package to the config's "
            f"`trusted_modules` (e.g. `trusted_modules=[{top}]`)")
    return getattr(importlib.import_module(module), name)


def sha256_of(path: Path) -> str:
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


def save_model(model: ModelHooks, path: Path, feature_names: list[str], extra: dict | None = None,
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
        "files": {name: sha256_of(path / name) for name in files},
        "factory_version": __version__,
        "python": platform.python_version(),
        **(extra or {}),
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return path / MANIFEST


def verify_files(path: Path, manifest: dict) -> None:
    """Every file the manifest lists exists and has the recorded SHA-256."""
    for name, digest in manifest["files"].items():
        fpath = Path(path) / name
        if not fpath.is_file():
            raise FactoryError(f"{fpath}: listed in the manifest but missing")
        if sha256_of(fpath) != digest:
            raise FactoryError(f"{fpath}: SHA-256 differs from the manifest (file altered); "
                               f"restore the original file or re-run the training")


def load_model(path: Path, trusted_modules=()) -> tuple[ModelHooks, dict]:
    """Load a model saved by :func:`save_model`; returns (model, manifest)."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise FactoryError(f"{path}: no {MANIFEST}; not a factory model directory")
    manifest = json.loads(mpath.read_text())
    verify_files(path, manifest)
    cls = trusted_import(manifest["class"], trusted_modules, "model class", mpath)
    params = dict(manifest["params"])
    if "network" in params:  # torch: the network's `_partial_` node, under the same rule
        params["network"] = network_node(params["network"], trusted_modules, mpath)
    return cls.load_native(path, params, manifest.get("state", {})), manifest


def network_node(node: dict, trusted_modules, where: Path):
    """A saved ``_partial_`` node (``_target_`` + kwargs) back into a ``functools.partial``."""
    node = dict(node)
    target = str(node.pop("_target_", ""))
    node.pop("_partial_", None)
    return functools.partial(trusted_import(target, trusted_modules, "network class", where),
                             **node)


def load_adapter(path: Path, trusted_modules=()):
    """The fitted adapter saved beside a model (``adapter.json``), rebuilt without refitting.

    Call after :func:`load_model` (which verifies the file's hash). The class is imported
    only from ``factory`` or a trusted module.
    """
    state = json.loads((Path(path) / ADAPTER).read_text())
    cls = trusted_import(state.get("class", ""), trusted_modules, "adapter class",
                         Path(path) / ADAPTER)
    return cls.from_state(state)

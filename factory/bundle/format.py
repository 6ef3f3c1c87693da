"""Bundle format: file names, the format version, library versions and the hashed manifest."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path

from factory import __version__
from factory.errors import FactoryError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Libraries whose major version decides whether saved models read back the same.
LIBRARIES = ("numpy", "pandas", "scikit-learn", "xgboost-cpu", "xgboost", "lightgbm",
             "catboost", "torch", "TA-Lib", "neuralforecast", "hmmlearn")


def library_versions() -> dict[str, str]:
    out = {"factory": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` but the manifest (posix relative paths)."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): _sha256(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p != root / MANIFEST}


def write_manifest(root: Path, info: dict) -> Path:
    manifest = {"format_version": FORMAT_VERSION, "libraries": library_versions(), **info,
                "files": tree_hashes(root)}
    (Path(root) / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    return Path(root) / MANIFEST


def read_manifest(root: Path, allow_version_mismatch: bool = False) -> dict:
    """The verified manifest: present, a format this code reads, every file's hash as
    recorded and no file added, and the same major versions of the model libraries."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise FactoryError(f"bundle {root} is not a directory (pass `bundle=<run dir>/bundle`)")
    if not path.is_file():
        raise FactoryError(f"{path} is missing: {root} is not a bundle, or an incomplete copy "
                           f"of one (copy the whole directory)")
    manifest = json.loads(path.read_text())
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FactoryError(f"{path}: bundle format version {version!r} is newer than this "
                           f"factory reads ({FORMAT_VERSION}); upgrade factory to load it")
    recorded = manifest.get("files", {})
    for name, digest in recorded.items():
        file = root / name
        if not file.is_file():
            raise FactoryError(f"{file}: listed in {path} but missing; copy the whole bundle")
        if _sha256(file) != digest:
            raise FactoryError(f"{file}: SHA-256 differs from {path} (the file was altered); "
                               f"restore it from the original bundle or retrain")
    extra = sorted(set(tree_hashes(root)) - set(recorded))
    if extra:
        raise FactoryError(f"{root}: file(s) {extra} are not in {MANIFEST}; a bundle is "
                           f"sealed when written, remove them")
    check_libraries(manifest.get("libraries", {}), path, allow_version_mismatch)
    return manifest


def _major(version: str) -> str:
    return str(version).split(".")[0]


def check_libraries(saved: dict, where: Path, allow: bool) -> None:
    """Refuse a bundle written with another major version of a model library."""
    here = library_versions()
    differ = {k: (v, here[k]) for k, v in saved.items()
              if k in here and k not in ("python", "factory") and _major(v) != _major(here[k])}
    if differ and not allow:
        listed = ", ".join(f"{k} {a} (here {b})" for k, (a, b) in sorted(differ.items()))
        raise FactoryError(f"{where}: written with {listed}: another major version may not read "
                           f"the models back the same; install those versions, or pass "
                           f"`allow_version_mismatch=true` to proceed anyway")

"""``portfolio.yaml``: a chosen portfolio configuration, versioned beside the model registry.

Every ``task=portfolio`` run writes ``portfolio/portfolio.yaml`` in its run directory: the
bundles (as given and as resolved, with their names and manifest hashes), the rule baseline,
the parameters chosen on validation, the capital, the periods and the headline figures.
``portfolio.promote=true reason=...`` copies it into a :class:`~factory.registry.Registry`
rooted at ``portfolio.registry`` (default ``<registry.path>/portfolios``) as the next version
of its name and makes it live, with the same locking, history and rollback as bundles:

    outputs/registry/portfolios/<name>/versions/<n>/portfolio.yaml
    outputs/registry/portfolios/<name>/live.json, history.jsonl

``portfolio.load=registry:<name>[@<n>]`` (or a path) runs a saved configuration again.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import yaml

from factory.errors import FactoryError
from factory.registry import Registry

FILE = "portfolio.yaml"
FORMAT = 1


def manifest_sha(bundle_dir: Path) -> str:
    """SHA-256 of a bundle's manifest (which hashes every other file of it)."""
    return hashlib.sha256((Path(bundle_dir) / "manifest.json").read_bytes()).hexdigest()


def save(path: Path, doc: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"format": FORMAT, **doc}, sort_keys=False))
    return path


def load(ref: str, registry_root: str | Path) -> dict:
    """A saved configuration: ``registry:<name>[@<n>]``, a portfolio.yaml, or its folder."""
    ref = str(ref)
    if ref.startswith("registry:"):
        name, _, version = ref[len("registry:"):].partition("@")
        path = Registry(registry_root).path(name, int(version) if version else None) / FILE
    else:
        path = Path(ref)
        path = path / FILE if path.is_dir() else path
    if not path.is_file():
        raise FactoryError(f"`portfolio.load={ref}`: no {FILE} at {path}")
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or "params" not in doc or "bundles" not in doc:
        raise FactoryError(f"{path}: not a portfolio configuration (needs `params` and "
                           "`bundles`; written by task=portfolio)")
    if int(doc.get("format", 0)) > FORMAT:
        raise FactoryError(f"{path}: format {doc['format']} is newer than this factory reads "
                           f"({FORMAT}); upgrade factory")
    return doc


def promote(path: Path, registry_root: str | Path, name: str, reason: str,
            run: str | None = None) -> int:
    """Copy ``path`` (a portfolio.yaml) in as the next version of ``name``; make it live."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(path, Path(tmp) / FILE)
        return Registry(registry_root).promote(name, Path(tmp), reason, run=run)

"""Lower stages never import higher ones (the layering rule in docs/architecture.md)."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

# Each module may import only from its own rank or lower ranks.
RANKS = {
    "errors": 0, "config": 0, "signatures": 0, "threads": 0, "data": 1, "features": 2,
    "labeling": 3, "splits": 4, "dataset": 5, "cache": 5, "phase1": 6, "adapters": 7,
    "models": 8, "training": 9, "evaluation": 10, "ensemble": 11, "tracking": 11,
    "simulation": 11, "reports": 11, "monitoring": 11, "bundle": 12, "registry": 12,
    "outputs": 12, "experiment": 13, "portfolio": 13, "tasks": 14, "serving": 14,
    "docgen": 15,
}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "factory" and len(parts) > 1 else None


def test_no_upward_imports():
    violations = []
    for path in sorted((ROOT / "factory").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        own = _stage(".".join(rel.parts))
        if own is None or own == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                target = _stage(name)
                if target and target in RANKS and RANKS[target] > RANKS[own]:
                    violations.append(f"{rel}: {own} imports {name}")
    assert not violations, "\n".join(violations)


def test_every_package_has_a_rank():
    """A new package or top-level module must be placed on a floor (else it is unchecked)."""
    stages = {p.stem if p.is_file() else p.name for p in (ROOT / "factory").iterdir()
              if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert stages <= set(RANKS), sorted(stages - set(RANKS))

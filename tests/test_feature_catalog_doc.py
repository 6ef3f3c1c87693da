"""docs/features.md is generated from the registry and must list every group."""

from __future__ import annotations

from factory.features.describe import markdown
from tests.conftest import ROOT


def test_feature_catalog_doc_is_current():
    text = (ROOT / "docs" / "features.md").read_text()
    assert text == markdown(), "regenerate: python -m factory.features.describe > docs/features.md"
    assert "| `rsi` |" in text and "| `haar_energy` |" in text

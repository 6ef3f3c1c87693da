"""Print the feature catalog as Markdown: ``python -m factory.features.describe``.

docs/features.md is this output; tests/test_feature_catalog_doc.py fails when it is stale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factory.features.registry import catalog


def _sample_bars(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 5e-4, n)) * close
    index = pd.date_range("2024-01-02 23:00", periods=n, freq="5min", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                         "low": np.minimum(open_, close) - spread, "close": close,
                         "volume": rng.integers(50, 500, n).astype(float)}, index=index)


def markdown() -> str:
    bars = _sample_bars()
    rows = []
    for name, group in sorted(catalog().items(), key=lambda kv: (kv[1].category, kv[0])):
        columns = list(group.fn(bars))
        shown = ", ".join(f"`{c}`" for c in columns[:6]) + (" ..." if len(columns) > 6 else "")
        definition = group.doc.replace("|", "\\|")  # a pipe would end the table cell
        rows.append(f"| {group.category} | `{name}` | {len(columns)} | {group.warmup_bars({})} "
                    f"| {definition} | {shown} |")
    total = sum(len(catalog()[n].fn(bars)) for n in catalog())
    return "\n".join([
        "# Feature catalog",
        "",
        "Generated from the registry (`python -m factory.features.describe > docs/features.md`).",
        f"{len(catalog())} groups, {total} columns with default parameters, all causal "
        "(bars <= t).",
        "Warm-up: leading bars left undefined with the defaults. Multi-timeframe versions",
        "(`features.timeframes` / `mtf_groups`) add each column again per ladder rung with the",
        "rung as suffix (`rsi_14_1h`); train-fitted columns (`hmm_p*`, `hmm_state`,",
        "`ffd_fitted`) come from `features.fitted`. Definitions and warm-up formulas are in",
        "each module's docstring under `factory/features/catalog/`.",
        "",
        "| category | group | columns | warm-up | definition | columns (first 6) |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ])


if __name__ == "__main__":
    print(markdown(), end="")

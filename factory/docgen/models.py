"""docs/models.md's tables, generated from the model YAMLs, the classes and measured data.

``python -m factory.docgen`` (every generated page) re-renders the generated sections of
docs/models.md and leaves its prose as it is;
tests/test_generated_docs.py fails when the page is stale. The sections:

* ``models-summary``: how many models of each family;
* ``models-table``: one row per ``conf/model/*.yaml``: family (the class's ``family``), input
  (the adapter the YAML picks), what it is (the first sentence of the YAML's description),
  network or library (the torch network class, the neuralforecast architecture, or the
  libraries the model's module imports), default feature set, ``trainer.max_epochs`` and the
  source file;
* ``models-full-size``: the ``full-size (GPU):`` settings each torch YAML's comment gives;
* ``models-benchmarks``: the measurements in docs/data/model_benchmarks.json (written by hand
  from ``tests/benchmarks/test_bench_all_models.py``'s output; never computed here). A model
  without a measurement gets a "not measured" row, so a new model shows up there too.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
from collections import Counter
from pathlib import Path

from factory.docgen.yamldoc import (
    CONF,
    DOCS,
    ROOT,
    YamlFile,
    cell,
    first_sentence,
    get_class,
    read,
    splice,
    table,
)

PAGE = DOCS / "models.md"
BENCHMARKS = DOCS / "data" / "model_benchmarks.json"
FULL_SIZE = "full-size (GPU):"
# imports that say nothing about which library a model wraps
PLUMBING = {"factory", "numpy", "pandas", "scipy", "numba", "torch", "safetensors",
            "huggingface_hub", "joblib", "threadpoolctl"}


def _override(yf: YamlFile, group: str) -> str | None:
    """The option a model YAML's ``defaults`` picks for ``group`` (None: the run's default)."""
    for entry, _ in yf.defaults():
        match = re.match(rf"override /{group}@_global_\.{group}:\s*(\S+)", entry)
        if match:
            return match[1]
    return None


def _description(yf: YamlFile) -> tuple[str, str]:
    """(what it is, full-size settings) from the YAML's leading comment."""
    text, _, full = yf.header.partition(FULL_SIZE)
    return first_sentence(text.strip()), full.strip()


def _libraries(cls) -> list[str]:
    """Top-level packages the class's module imports, plumbing and the stdlib left out."""
    tree = ast.parse(Path(inspect.getfile(cls)).read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names += [a.name.split(".")[0] for a in node.names]
    keep = {n for n in names if n not in PLUMBING and n not in sys.stdlib_module_names}
    return sorted(keep)


def _source(cls) -> str:
    path = Path(inspect.getfile(cls)).resolve().relative_to(ROOT)
    return f"[`{path.name}`](../{path.as_posix()})"


def model_row(yf: YamlFile) -> dict:
    """Everything the tables say about one model YAML."""
    is_global = yf.mapping("model._target_") is not None
    target = (yf.mapping("model._target_") if is_global else yf.mapping("_target_")).value
    cls = get_class(target)
    network = yf.mapping("model.network._target_")
    arch = yf.mapping("model.network.architecture")
    if arch is not None:
        mode = yf.mapping("model.network.mode")
        impl = f"neuralforecast `{arch.value}` ({mode.value if mode is not None else ''}) + head"
        source = _source(get_class(network.value))
    elif network is not None:
        net = get_class(network.value)
        extra = _libraries(net)
        impl = f"torch `{net.__name__}`" + (f" ({', '.join(extra)})" if extra else "")
        source = _source(net)
    else:
        impl = ", ".join(f"`{lib}`" for lib in _libraries(cls))
        source = _source(cls)
    epochs = yf.mapping("trainer.max_epochs")
    what, full = _description(yf)
    return {"name": yf.path.stem, "family": getattr(cls, "family", "?"),
            "input": _override(yf, "adapter") or "tabular", "what": what, "impl": impl,
            "features": _override(yf, "features") or "core",
            "epochs": epochs.value if epochs is not None else "-", "source": source,
            "full": full}


def rows() -> list[dict]:
    return [model_row(read(p)) for p in sorted((CONF / "model").glob("*.yaml"))]


def summary() -> str:
    found = rows()
    counts = Counter(r["family"] for r in found)
    parts = ", ".join(f"{n} {family}" for family, n in sorted(counts.items()))
    return f"{len(found)} models ship ({parts}), one YAML each in `conf/model/`."


def models_table() -> str:
    body = [[f"`{r['name']}`", r["family"], r["input"], cell(r["what"]), cell(r["impl"]),
             r["features"], str(r["epochs"]), r["source"]] for r in rows()]
    return table(body, ["name", "family", "input", "what it is", "network / library",
                        "features", "max epochs", "source"])


def full_size() -> str:
    body = [[f"`{r['name']}`", cell(r["full"])] for r in rows() if r["full"]]
    return table(body, ["name", "full-size (GPU) settings, from the YAML's comment"])


def benchmarks() -> str:
    data = json.loads(BENCHMARKS.read_text())
    measured = data["models"]
    body = []
    for r in rows():
        m = measured.get(r["name"])
        if m is None:
            body.append([f"`{r['name']}`", "-", "-", "-", "-", "-", "not measured"])
            continue
        fit = m.get("fit_seconds")
        if fit is None and m.get("s_per_epoch") is not None:
            fit = f"≤ {round(m['max_epochs'] * m['s_per_epoch'])}"  # the epoch bound
        body.append([f"`{r['name']}`", _num(m.get("params")), _num(m.get("max_epochs")),
                     _num(m.get("s_per_epoch")), _num(fit), _num(m.get("ms_per_1k")),
                     cell(m.get("note", ""))])
    return table(body, ["name", "params", "max epochs", "s / epoch", "fit s",
                        "ms / 1k predict", "note"])


def _num(value) -> str:
    return "-" if value is None else str(value)


SECTIONS = {"models-summary": summary, "models-table": models_table,
            "models-full-size": full_size, "models-benchmarks": benchmarks}


def render(name: str) -> str:
    if name not in SECTIONS:
        raise KeyError(f"docs/models.md: unknown generated section {name!r} "
                       f"(known: {sorted(SECTIONS)})")
    return SECTIONS[name]()


def regenerate(text: str) -> str:
    return splice(text, render)

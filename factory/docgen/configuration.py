"""docs/configuration*.md: the tables of defaults, generated from conf/ and sweeps/.

Each generated section of a page names what it renders: ``group:<name>`` (every option of a
group, one table each), or one of :data:`SECTIONS` (the defaults list, the top-level keys,
Hydra's settings, the feature sets as one matrix, the ensemble options and combiners, the
sweeps, the models by kind). ``other-groups`` renders every conf/ group that no page covers,
so a new group is documented from the moment it exists. Regenerate with
``python -m factory.docgen``; tests/test_generated_docs.py fails when a page is stale.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import yaml

from factory.docgen.yamldoc import (
    CONF,
    DOCS,
    HIDDEN,
    ROOT,
    YamlFile,
    as_yaml,
    cell,
    code,
    docstring_params,
    first_sentence,
    get_class,
    group_section,
    key_rows,
    option_section,
    options,
    read,
    section_names,
    splice,
    table,
)


# -- the named sections -----------------------------------------------------------------------
def defaults_list() -> str:
    yf = read(CONF / "config.yaml")
    node = yf.mapping("defaults")
    first, last = node.start_mark.line, node.value[-1].end_mark.line
    body = "\n".join(yf.lines[first - 1:last + 1]).rstrip()
    return f"```yaml\n{body}\n```"


def top_level() -> str:
    yf = read(CONF / "config.yaml")
    rows = key_rows(yf, skip=lambda e: e.key.split(".")[0] == "hydra")
    return table(rows, ["key", "default", "meaning"])


def hydra_settings() -> str:
    yf = read(CONF / "config.yaml")
    rows = key_rows(yf, skip=lambda e: e.key.split(".")[0] != "hydra")
    return table(rows, ["key", "value", "meaning"])


def matrix(group: str) -> str:
    """Options of a group that share one class as rows, their keys as columns."""
    files = [read(p) for p in options(group)]
    keys: list[str] = []
    for yf in files:
        keys += [str(k.value) for k, _ in yf.root.value if k.value not in HIDDEN
                 and k.value != "name" and str(k.value) not in keys]
    rows = []
    for yf in files:
        data = yf.data()
        row = [f"`{yf.path.stem}`", cell(first_sentence(yf.header))]
        for key in keys:
            value = data.get(key, None) if key in data else "-"
            if isinstance(value, dict) and key == "groups":
                value = f"{len(value)}: " + ", ".join(value)
            elif isinstance(value, dict):
                value = ", ".join(value)
            elif isinstance(value, list):
                value = ", ".join(map(str, value)) or "[]"
            row.append(cell("null" if value is None else value))
        rows.append(row)
    return table(rows, ["option", "what it is", *keys])


def matrix_keys(group: str) -> str:
    """The keys of a matrix group: code default and the first comment found for each."""
    files = [read(p) for p in options(group)]
    target = next(e.target for e in files[0].entries())
    cls = get_class(target)
    meanings: dict[str, str] = {}
    for yf in files:
        for e in yf.entries():
            key = e.key.split(".")[0]
            if e.meaning and "." not in e.key and key not in meanings:
                meanings[key] = e.meaning
    params = docstring_params(cls)
    rows = []
    for p in inspect.signature(cls).parameters.values():
        default = "" if p.default is inspect.Parameter.empty else as_yaml(p.default)
        rows.append([f"`{p.name}`", code(default),
                     cell(params.get(p.name) or meanings.get(p.name, ""))])
    return f"Class: `{target}`.\n\n" + table(rows, ["key", "code default", "meaning"])


def sweeps() -> str:
    rows = []
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        sweeper = (data.get("hydra") or {}).get("sweeper") or {}
        params = sweeper.get("params") or {}
        space = "<br>".join(cell(f"`{k}`: `{v}`") for k, v in params.items())
        other = ", ".join(f"`{k}: {v}`" for k, v in sweeper.items()
                          if k not in ("params", "sampler", "study_name", "direction"))
        rows.append([f"`+sweeps={path.stem}`", cell(read(path).header),
                     space, cell(other)])
    return table(rows, ["sweep", "what it is", "search space (`hydra.sweeper.params`)",
                        "sweeper settings"])


def ensemble_options() -> str:
    """``ensemble=none`` first, then the keys every ensemble shares, then the methods."""
    order = ("none", "voting", "stacking", "blending")
    files = sorted(options("ensemble"),
                   key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem))
    parts = [option_section(read(p), f"ensemble={p.stem}") for p in files]
    for path in sorted((CONF / "ensemble" / "shared").glob("*.yaml")):
        parts.insert(1, option_section(read(path), f"ensemble/shared={path.stem} (keys "
                                       f"shared by every ensemble)", prefix="ensemble."))
    return "\n".join(parts)


def combiners() -> str:
    return "\n".join(option_section(read(p), f"ensemble/combiner={p.stem}")
                     for p in sorted((CONF / "ensemble" / "combiner").glob("*.yaml")))


# -- models -------------------------------------------------------------------------------------
def model_kind(yf: YamlFile) -> str:
    """tabular | foundation | torch | backbone (a neuralforecast backbone under our head)."""
    network = yf.mapping("model.network._target_")
    if network is not None:
        return "backbone" if "nf_backbone" in network.value else "torch"
    return "foundation" if yf.mapping("weights") is not None else "tabular"


def model_files(kind: str) -> list[YamlFile]:
    files = [read(p) for p in options("model")]
    wanted = ("torch", "backbone") if kind == "all-torch" else (kind,)
    return [yf for yf in files if model_kind(yf) in wanted]


def _shared(files: list[YamlFile]) -> dict[str, tuple[str, str]]:
    """Keys with the same value and comment in every file: ``{key: (value, meaning)}``."""
    seen = [{e.key: (e.value, e.meaning) for e in yf.entries()} for yf in files]
    first = seen[0] if seen else {}
    return {k: v for k, v in first.items() if all(s.get(k) == v for s in seen[1:])}


def models(kind: str) -> str:
    files = model_files(kind)
    common = _shared(model_files("all-torch")) if kind in ("torch", "backbone") else {}
    if kind == "backbone":
        common |= _shared(files)
    parts = []
    for yf in files:
        network = yf.mapping("model.network._target_")
        title = f"model={yf.path.stem}"
        if network is not None:
            title += f": `{network.value}`"
            arch = yf.mapping("model.network.architecture")
            title += f" (`{arch.value}`)" if arch is not None else ""
        parts.append(option_section(yf, title, skip=lambda e: e.key in common))
    return "\n".join(parts)


def torch_shared() -> str:
    files = model_files("all-torch")
    common = _shared(files)
    rows = [[f"`{k}`", code(v), cell(m)] for k, (v, m) in common.items()]
    names = ", ".join(f"`{yf.path.stem}`" for yf in files)
    return (f"The same in every torch model's YAML ({len(files)}: {names}):\n\n"
            + table(rows, ["key", "default", "meaning"]))


def backbone_shared() -> str:
    files = model_files("backbone")
    common = _shared(files)
    torch_common = _shared(model_files("all-torch"))
    rows = [[f"`{k}`", code(v), cell(m)] for k, (v, m) in common.items()
            if k not in torch_common]
    return (f"The same in every neuralforecast backbone's YAML ({len(files)}), besides the "
            f"keys every torch model shares:\n\n" + table(rows, ["key", "default", "meaning"]))


# -- the dispatcher -----------------------------------------------------------------------------
SECTIONS: dict[str, Callable[[], str]] = {
    "defaults-list": defaults_list,
    "top-level": top_level,
    "hydra": hydra_settings,
    "features-sets": lambda: matrix("features"),
    "features-keys": lambda: matrix_keys("features"),
    "ensemble": ensemble_options,
    "combiners": combiners,
    "sweeps": sweeps,
    "models-tabular": lambda: models("tabular"),
    "models-foundation": lambda: models("foundation"),
    "models-torch-shared": torch_shared,
    "models-torch": lambda: models("torch"),
    "models-backbone-shared": backbone_shared,
    "models-backbone": lambda: models("backbone"),
}
# groups rendered by a dedicated section above (every other conf/ group is `group:<name>`)
COVERED = {"features": "features-sets", "ensemble": "ensemble", "model": "models-tabular"}
NOT_GROUPS = {"hydra", "sweeps"}  # Hydra's own groups; the sweeps symlink (see `sweeps`)


def groups() -> list[str]:
    return sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in NOT_GROUPS)


def pages() -> list[Path]:
    return sorted(DOCS.glob("configuration*.md"))


def render(name: str, documented: set[str] | None = None) -> str:
    """The body of generated section ``name``."""
    if name in SECTIONS:
        return SECTIONS[name]()
    if name.startswith("group:"):
        return group_section(name.split(":", 1)[1])
    if name == "other-groups":
        rest = [g for g in groups() if g not in (documented or set())]
        if not rest:
            return "(none: every group has its own section above)"
        return "\n".join(f"### {g}\n\n" + group_section(g, level=4) for g in rest)
    raise KeyError(f"unknown generated section {name!r} (known: {sorted(SECTIONS)}, "
                   f"group:<name>, other-groups)")


def documented_groups(texts: list[str]) -> set[str]:
    names = {n for text in texts for n in section_names(text)}
    out = {n.split(":", 1)[1] for n in names if n.startswith("group:")}
    return out | {g for g, section in COVERED.items() if section in names}


def regenerate(texts: dict[Path, str]) -> dict[Path, str]:
    """Every page re-rendered (``{path: new text}``)."""
    documented = documented_groups(list(texts.values()))
    return {path: splice(text, lambda n: render(n, documented)) for path, text in texts.items()}

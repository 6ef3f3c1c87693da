"""YAML files with their comments, rendered as Markdown tables (the generated docs' toolkit).

A generated page is hand-written prose around sections delimited by
``<!-- generated: NAME -->`` ... ``<!-- end generated -->``; :func:`splice` re-renders each
section and leaves the prose as it is.

What an option's table shows (one YAML file, :func:`option_section`):

* **key**: every leaf of the YAML (nested mappings flattened to dotted keys; a one-line
  ``{...}`` or ``[...]`` value is one leaf), in file order;
* **default**: the value exactly as written in the YAML;
* **meaning**: the key's YAML comment, i.e. the comment lines directly above it (same
  indentation, no blank line between) followed by the comment at the end of its line;
  a key without a comment falls back to its class's numpy-style docstring (``Parameters``).

The file's leading comment block describes the option; its ``defaults`` list is shown as
"composes". Keys that the ``_target_`` class accepts but the YAML leaves out are listed with
their code defaults (set them with ``+group.key=value``).

Comments are read with PyYAML's node marks (line and column of every key and value) plus
the source lines, so no comment-preserving YAML library is needed. Classes are imported by
name only (``hydra.utils.get_class``), as Hydra does: this module imports no pipeline stage.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
DOCS = ROOT / "docs"
COMMAND = "python -m factory.docgen"  # regenerates every generated page
MARKER = re.compile(r"<!-- generated: (?P<name>[^>]+?) -->\n.*?<!-- end generated -->", re.S)
SPECIAL = ("# @package", "# tests:")  # header lines for Hydra and the tests, not for readers
HIDDEN = {"_target_", "_partial_", "_recursive_", "_convert_", "defaults"}


@dataclass
class Entry:
    """One documented key of a YAML file."""

    key: str              # dotted path from the file's root
    value: str            # the value as written in the YAML ('' for a mapping)
    meaning: str          # its comment ('' if none)
    node: yaml.Node       # the value node
    target: str | None    # `_target_` of the mapping that holds the key (None: no class)


def splice(text: str, render: Callable[[str], str]) -> str:
    """``text`` with every generated section re-rendered by ``render(name)``."""
    def one(match: re.Match) -> str:
        body = render(match["name"].strip())
        return f"<!-- generated: {match['name']} -->\n{body.rstrip()}\n<!-- end generated -->"

    return MARKER.sub(one, text)


def section_names(text: str) -> list[str]:
    return [m["name"].strip() for m in MARKER.finditer(text)]


# -- reading YAML with its comments --------------------------------------------------------------
def join_lines(lines: list[str]) -> str:
    """Comment lines as one paragraph (a word hyphenated across lines is joined back)."""
    out = ""
    for line in (ln.strip() for ln in lines):
        if not line:
            continue
        sep = "" if not out or (out.endswith("-") and line[:1].islower()) else " "
        out = f"{out}{sep}{line}"
    return out


def _comment(rest: str) -> str:
    """The comment in the remainder of a line after its value ('' if none)."""
    idx = rest.find("#")
    return rest[idx + 1:].strip() if idx >= 0 else ""


class YamlFile:
    """A YAML file's node tree, source lines, header and documented keys."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.text = self.path.read_text()
        self.lines = self.text.splitlines()
        self.root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        self.header_end = 0
        while self.header_end < len(self.lines) and self.lines[self.header_end].startswith("#"):
            self.header_end += 1

    @property
    def header(self) -> str:
        """The leading comment block as one paragraph (Hydra and test lines left out)."""
        return join_lines([ln[1:] for ln in self.lines[:self.header_end]
                           if not ln.startswith(SPECIAL)])

    def source(self, node: yaml.Node) -> str:
        return self.text[node.start_mark.index:node.end_mark.index].strip()

    def _above(self, key: yaml.Node, column: int | None = None) -> list[str]:
        """Comment lines directly above ``key`` at its indentation (not the file header)."""
        out, line = [], key.start_mark.line - 1
        column = key.start_mark.column if column is None else column
        while line >= self.header_end:
            raw = self.lines[line]
            if not raw.strip().startswith("#") or len(raw) - len(raw.lstrip()) != column:
                break
            out.insert(0, raw.strip()[1:].strip())
            line -= 1
        return out

    def _trailing(self, key: yaml.Node, value: yaml.Node) -> str:
        """The end-of-line comment of a key, plus aligned comment-only continuation lines."""
        inline = isinstance(value, yaml.ScalarNode) or value.flow_style
        if isinstance(value, yaml.ScalarNode) and value.style in ("|", ">"):
            inline = False
        if inline:
            line, col = value.end_mark.line, value.end_mark.column
        else:
            line, col = key.end_mark.line, key.end_mark.column
        text = _comment(self.lines[line][col:]) if line < len(self.lines) else ""
        if not text:
            return ""
        parts, nxt = [text], line + 1
        hash_col = self.lines[line].find("#", col)
        while nxt < len(self.lines):
            raw = self.lines[nxt]
            if not raw.strip().startswith("#") or raw.find("#") != hash_col:
                break
            parts.append(raw.strip()[1:].strip())
            nxt += 1
        return join_lines(parts)

    def entries(self, node: yaml.Node | None = None, prefix: str = "") -> Iterator[Entry]:
        """Every key, depth first in file order; block mappings are flattened below their
        own entry (whose value is the mapping's ``_target_`` or '')."""
        node = self.root if node is None else node
        if not isinstance(node, yaml.MappingNode):
            return
        mine = next((v.value for k, v in node.value if k.value == "_target_"), None)
        for key, value in node.value:
            name = str(key.value)
            if name in HIDDEN:
                continue
            meaning = join_lines([*self._above(key), self._trailing(key, value)])
            dotted = f"{prefix}{name}"
            if isinstance(value, yaml.MappingNode) and not value.flow_style:
                inner = next((v.value for k, v in value.value if k.value == "_target_"), None)
                if inner or meaning:
                    yield Entry(dotted, f"`{inner}`" if inner else "", meaning, value, mine)
                yield from self.entries(value, f"{dotted}.")
            else:
                yield Entry(dotted, self.source(value), meaning, value, mine)

    def mapping(self, key: str) -> yaml.Node | None:
        """The value node at dotted ``key`` (None if absent)."""
        node = self.root
        for part in key.split("."):
            if not isinstance(node, yaml.MappingNode):
                return None
            node = next((v for k, v in node.value if k.value == part), None)
        return node

    def defaults(self) -> list[tuple[str, str]]:
        """The ``defaults`` list: (entry as written, its comment)."""
        node = self.mapping("defaults")
        if not isinstance(node, yaml.SequenceNode):
            return []
        out = []
        for item in node.value:
            last = item.value[-1][1] if isinstance(item, yaml.MappingNode) else item
            rest = self.lines[last.end_mark.line][last.end_mark.column:]
            text = self.text[item.start_mark.index:last.end_mark.index].strip()
            above = self._above(item, node.start_mark.column)  # the `- ` column
            out.append((text, join_lines([*above, _comment(rest)])))
        return out

    def data(self) -> dict:
        return yaml.safe_load(self.text) or {}


@functools.lru_cache(maxsize=512)
def _read(path: Path, mtime_ns: int) -> YamlFile:
    return YamlFile(path)


def read(path: Path) -> YamlFile:
    """:class:`YamlFile` of ``path``, parsed once per version of the file."""
    path = Path(path)
    return _read(path, path.stat().st_mtime_ns)


# -- classes: docstrings and signatures ---------------------------------------------------------
def get_class(target: str | None):
    """The class (or function) a ``_target_`` names, imported by name as Hydra does.

    An import error propagates: a YAML naming a missing class is a bug the docs must not hide.
    """
    if not target:
        return None
    module, _, name = str(target).rpartition(".")
    return getattr(importlib.import_module(module), name)


def _plain_rst(text: str) -> str:
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def docstring_params(cls) -> dict[str, str]:
    """``{name: description}`` from a numpy-style ``Parameters`` section of ``cls``'s docstring
    (``name : text`` or ``name: text`` or ``a, b: text`` lines, indented continuations)."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"Parameters\n-+\n(.*?)(?:\n\S[^\n]*\n-+\n|\Z)", doc, re.S)
    if not match:
        return {}
    out: dict[str, str] = {}
    current: list[str] = []
    for line in match[1].splitlines():
        head = re.match(r"^([A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_]\w*)*)\s*:\s*(.*)$", line)
        if head and not line.startswith(" "):
            current = []
            for name in re.split(r"\s*,\s*", head[1]):
                out[name] = ""
                current.append(name)
            text = head[2]
        else:
            text = line.strip()
        for name in current:
            out[name] = f"{out[name]} {text}".strip()
    return {k: _plain_rst(v) for k, v in out.items()}


def code_defaults(cls, present: set[str]) -> list[tuple[str, str]]:
    """Constructor keywords with a default that the YAML does not set: ``[(name, default)]``."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return []
    return [(p.name, as_yaml(p.default)) for p in params
            if p.default is not inspect.Parameter.empty and p.name not in present
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def as_yaml(value) -> str:
    """A Python default as it would be written in a YAML file (``None`` -> ``null``)."""
    value = list(value) if isinstance(value, tuple) else value
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=1000)
    except yaml.YAMLError:
        return repr(value)
    return text.removesuffix("\n").removesuffix("\n...").strip()


# -- rendering --------------------------------------------------------------------------------
def cell(text: str) -> str:
    """Markdown-table-safe text: pipes escaped, and ``<`` outside code spans."""
    parts = re.split(r"(`[^`]*`)", str(text).replace("\n", " "))
    out = [p if p.startswith("`") else p.replace("<", "\\<") for p in parts]
    return "".join(out).replace("|", "\\|")


def first_sentence(text: str) -> str:
    """Up to the first full stop that ends a sentence (not ``e.g.``, not ``10m .. 1h``)."""
    match = re.search(r"(?<=[\w)`'])\.(?=\s+[A-Z(`]|$)", text)
    return text[:match.start() + 1] if match else text


def code(value: str) -> str:
    if not value:
        return ""
    if value.startswith("`") and value.endswith("`"):
        return cell(value)
    return cell(f"`{value}`")


def table(rows: list[list[str]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def key_rows(yf: YamlFile, skip: Callable[[Entry], bool] = lambda e: False) -> list[list[str]]:
    rows = []
    docs: dict[str | None, dict[str, str]] = {}
    for e in yf.entries():
        if skip(e):
            continue
        meaning = e.meaning
        if not meaning and e.target:
            if e.target not in docs:
                docs[e.target] = docstring_params(get_class(e.target))
            meaning = docs[e.target].get(e.key.rpartition(".")[2], "")
        rows.append([f"`{e.key}`", code(e.value), cell(meaning)])
    return rows


def option_section(yf: YamlFile, title: str, level: int = 3, note: str = "",
                   skip: Callable[[Entry], bool] = lambda e: False, prefix: str = "") -> str:
    """One option: heading, description, composes line, key table, code-default keys."""
    target = next((v.value for k, v in getattr(yf.root, "value", []) if k.value == "_target_"),
                  None)
    heading = f"{'#' * level} {title}" + (f": `{target}`" if target else "")
    parts = [heading, ""]
    if yf.header:
        parts += [cell(yf.header).replace("\\|", "|"), ""]
    composes = [f"`{d}`" + (f" ({cell(c)})" if c else "") for d, c in yf.defaults()]
    if composes:
        parts += ["Composes: " + "; ".join(composes) + ".", ""]
    if note:
        parts += [note, ""]
    rows = key_rows(yf, skip)
    if rows:
        parts += [table(rows, ["key", "default", "meaning"]), ""]
    cls = get_class(target)
    composed = {d.partition(":")[0].strip().lstrip("/").split("@")[-1] for d, _ in yf.defaults()}
    extra = code_defaults(cls, {str(k.value) for k, _ in yf.root.value} | composed) if cls else []
    if extra:
        params = docstring_params(cls)
        parts += [f"Also accepted (code defaults; set with `+{prefix}<key>=...`): "
                  + ", ".join(f"`{n}` = `{d}`" + (f" ({cell(params[n])})" if params.get(n)
                                                 else "") for n, d in extra) + ".", ""]
    return "\n".join(parts)


def options(group: str) -> list[Path]:
    return sorted((CONF / group).glob("*.yaml"))


def group_section(group: str, level: int = 3) -> str:
    return "\n".join(option_section(read(p), f"{group}={p.stem}", level, prefix=f"{group}.")
                     for p in options(group))

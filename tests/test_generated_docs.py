"""The generated docs match conf/ and the code: docs/configuration*.md and docs/models.md.

Each page is hand-written prose around ``<!-- generated: NAME -->`` sections; a page must be
a fixed point of re-rendering those sections (``python -m factory.docgen`` regenerates).
The comment reader behind the "meaning" columns is checked on a YAML written here.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from omegaconf import OmegaConf

from factory.docgen import configuration
from factory.docgen import models as describe
from factory.docgen.yamldoc import COMMAND, YamlFile, docstring_params, splice
from tests.conftest import CONF, ROOT, model_names

STALE = f"stale; regenerate with: {COMMAND}"


@pytest.fixture(scope="module")
def pages() -> dict:
    return {p: p.read_text() for p in configuration.pages()}


def test_configuration_pages_are_current(pages):
    assert len(pages) >= 2
    for path, new in configuration.regenerate(pages).items():
        assert new == pages[path], f"{path.relative_to(ROOT)} is {STALE}"


def test_models_page_is_current():
    text = describe.PAGE.read_text()
    assert describe.regenerate(text) == text, f"docs/models.md is {STALE}"


def test_every_group_option_and_model_is_documented(pages):
    text = "\n".join(pages.values())
    assert configuration.groups(), "no conf/ groups found"
    for group in configuration.groups():
        for option in sorted((CONF / group).glob("*.yaml")):
            heading, row = f"### {group}={option.stem}", f"| `{option.stem}` |"  # row: a matrix
            found = heading in text or row in text
            assert found, f"{group}={option.stem} is in no page; regenerate: {COMMAND}"
    combiners = sorted(p.stem for p in (CONF / "ensemble" / "combiner").glob("*.yaml"))
    missing = [c for c in combiners if f"### ensemble/combiner={c}:" not in text]
    assert combiners and missing == [], f"combiners {missing} missing; regenerate: {COMMAND}"
    models = describe.PAGE.read_text()
    missing = [name for name in model_names() if f"| `{name}` |" not in models]
    assert missing == [], f"docs/models.md lacks {missing}; regenerate: {COMMAND}"
    measured = json.loads(describe.BENCHMARKS.read_text())["models"]
    stray = sorted(set(measured) - set(model_names()))
    assert stray == [], f"docs/data/model_benchmarks.json names no model config: {stray}"


def test_tables_show_the_yaml_defaults(pages):
    """The drift the generator exists for: values come from the YAMLs themselves."""
    text = "\n".join(pages.values())
    patience = yaml_value(CONF / "trainer" / "default.yaml", "patience")
    assert f"| `patience` | `{patience}` |" in text
    for name in ("lstm", "patchtst", "inceptiontime"):
        epochs = yaml_value(CONF / "model" / f"{name}.yaml", "trainer.max_epochs")
        row = re.search(rf"\| `{name}` \|[^\n]*", describe.PAGE.read_text())[0]
        assert f"| {epochs} |" in row
    assert "| `trusted_modules` | `[]` |" in text


def yaml_value(path, key):
    return OmegaConf.select(OmegaConf.load(path), key)


YAML = textwrap.dedent("""\
    # @package _global_
    # tests: {a: 1}
    # A toy option: what it is. full-size (GPU): never
    defaults:
      # the feature set
      - override /features@_global_.features: core
    _target_: collections.OrderedDict
    alpha: 1.0            # trailing comment
    # a block above
    # on two lines
    beta: [1, 2]
    gamma:                # a nested block
      delta: x            # inner, continued
                          # on the next line
      eps: "y # not a comment"
    zeta: 3
    """)


def test_comment_reader(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(YAML)
    yf = YamlFile(path)
    assert yf.header == "A toy option: what it is. full-size (GPU): never"
    assert yf.defaults() == [("override /features@_global_.features: core", "the feature set")]
    got = {e.key: (e.value, e.meaning) for e in yf.entries()}
    assert got == {
        "alpha": ("1.0", "trailing comment"),
        "beta": ("[1, 2]", "a block above on two lines"),
        "gamma": ("", "a nested block"),
        "gamma.delta": ("x", "inner, continued on the next line"),
        "gamma.eps": ('"y # not a comment"', ""),
        "zeta": ("3", ""),
    }


def test_docstring_parameters_and_splice():
    class Toy:
        """Toy.

        Parameters
        ----------
        a : the first
            parameter.
        b, c: shared ``text``.
        """

    assert docstring_params(Toy) == {"a": "the first parameter.", "b": "shared `text`.",
                                     "c": "shared `text`."}
    page = "intro\n<!-- generated: x -->\nold\n<!-- end generated -->\noutro\n"
    assert splice(page, lambda name: f"new {name}\n") == (
        "intro\n<!-- generated: x -->\nnew x\n<!-- end generated -->\noutro\n")

"""Every YAML under conf/ composes and instantiates; --help lists the groups."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
from hydra.utils import instantiate

from tests.conftest import CONF, ROOT

GROUPS = ["task", "data", "labeling", "features", "adapter", "trainer", "model", "cv",
          "ensemble", "evaluation", "tracker", "outputs"]
# groups a task brings in its own defaults list (conf/task/<task>.yaml), not the root's
TASK_GROUPS = {"sim": "simulate", "monitor": "monitor"}
# every option of every group (the models are built in test_at_least_22_models_... below)
OPTIONS = [(g, p.stem) for g in [*GROUPS, *TASK_GROUPS] if g != "model"
           for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_yaml_composes_and_instantiates(make_cfg, tmp_path, group, option):
    is_file_source = group == "data" and option != "synthetic"
    extra = [f"data.path={tmp_path / 'bars.csv'}"] if is_file_source else []
    if group in TASK_GROUPS:
        extra.append(f"task={TASK_GROUPS[group]}")
    cfg = make_cfg(f"{group}={option}", *extra)
    node = cfg[group]
    if group == "outputs":  # a mapping of outputs, each a component
        objs = [instantiate(n, _convert_="all") for n in node.values()]
    else:
        objs = [instantiate(node, _convert_="all")]
    for obj in objs:
        module = (obj.func if isinstance(obj, functools.partial) else type(obj)).__module__
        assert module.startswith("factory"), (group, option, module)


def test_defaults_list_is_the_pipeline_map():
    text = (CONF / "config.yaml").read_text()
    for group in GROUPS:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"- {group}:"))
        assert "#" in line, f"group {group} needs a one-line comment in config.yaml"
    for group, task in TASK_GROUPS.items():  # the task that uses a group composes it
        text = (CONF / "task" / f"{task}.yaml").read_text()
        assert f"- /{group}: default" in text, f"conf/task/{task}.yaml must compose {group}"


def test_help_lists_config_groups():
    out = subprocess.run([sys.executable, "run.py", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0
    for group in [*GROUPS, *TASK_GROUPS]:
        assert f"{group}:" in out.stdout
    assert "xgboost" in out.stdout and "python run.py -m" in out.stdout


def test_at_least_22_models_compose_and_instantiate(make_cfg):
    """The model zoo: every conf/model YAML composes with its own defaults and builds."""
    from factory.config import build

    names = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
    built = {}
    for name in names:
        cfg = make_cfg(f"model={name}")
        built[name] = (build(cfg.model), build(cfg.adapter))
    assert len(built) >= 22, sorted(built)
    families = {model.family for model, _ in built.values()}
    assert {"boosting", "classical", "neural", "foundation"} <= families
    for name, (model, adapter) in built.items():
        assert adapter.kind == model.input_kind, f"{name}: its YAML picks a matching adapter"

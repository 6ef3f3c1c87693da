"""Config nodes checked against the signatures of their ``_target_`` before instantiation.

A misspelled key or a value of the wrong type must fail before Phase 1 with one line naming
the key, the value and the fix, not inside a library's training loop minutes later
(``model.max_depth=abc`` used to end in an XGBoost traceback). For every node with a
``_target_``: each key must be a parameter of the target (unless it takes ``**kwargs``), and a
value whose parameter is annotated with a plain type (``int``, ``float``, ``bool``, ``str``,
optionally ``| None``) must have that type. Ranges are checked by the components themselves.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from factory.errors import FactoryError

SPECIAL = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
PLAIN = {int: "an int", float: "a number", bool: "true or false", str: "a string"}


def _import(target: str):
    module, _, name = str(target).rpartition(".")
    try:
        obj = importlib.import_module(module)
    except ImportError:
        return None  # Hydra reports a target it cannot import in its own words
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return obj


def _plain_types(annotation) -> tuple[type, ...] | None:
    """The plain types an annotation allows (None: not checkable, e.g. a union of classes)."""
    if annotation in PLAIN:
        return (annotation,)
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    args = typing.get_args(annotation)
    if all(a in PLAIN or a is type(None) for a in args):
        return tuple(args)
    return None


def _type_ok(value: Any, allowed: tuple[type, ...]) -> bool:
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    if isinstance(value, float):
        return float in allowed
    return isinstance(value, tuple(t for t in allowed if t is not type(None)))


def _check_target(node: DictConfig, path: str) -> None:
    target = _import(node["_target_"])
    if target is None:
        return
    func = target.__init__ if inspect.isclass(target) else target
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return  # a builtin without a signature: nothing to check
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    names = [n for n in params if n != "self"]
    try:
        hints = typing.get_type_hints(func)
    except (NameError, TypeError):  # annotations naming types this module cannot see
        hints = {}
    label = getattr(target, "__name__", str(target))
    for key in node:
        if key in SPECIAL:
            continue
        where = f"{path}.{key}" if path else str(key)
        if OmegaConf.is_missing(node, key):
            continue  # `???`: config validation names missing values first
        if key not in names:
            raise FactoryError(f"`{where}` is not a parameter of {label}; valid: "
                               f"{', '.join(names)} (check the spelling in the YAML or override)")
        allowed = _plain_types(hints.get(key))
        value = node._get_node(key)._value() if OmegaConf.is_config(node) else node[key]
        if allowed is None or OmegaConf.is_config(value) or _interpolation(value):
            continue
        if not _type_ok(value, allowed):
            want = " or ".join(PLAIN.get(t, "null") for t in allowed)
            raise FactoryError(f"`{where}` must be {want}, got {value!r} (e.g. "
                               f"`{where}={_example(allowed, params[key].default)}`)")


def _interpolation(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _example(allowed: tuple[type, ...], default: Any) -> Any:
    if default is not inspect.Parameter.empty and default is not None:
        return default
    return {int: 1, float: 0.1, bool: "true", str: "name"}.get(allowed[0], "null")


def check_node(node: Any, path: str = "") -> None:
    """Raise :class:`FactoryError` for the first key or plain value that does not fit the
    signature of its ``_target_`` anywhere in ``node`` (nested nodes included)."""
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            check_node(item, f"{path}[{i}]")
        return
    if not isinstance(node, DictConfig):
        return
    if "_target_" in node:
        _check_target(node, path)
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig | ListConfig):
            check_node(child, f"{path}.{key}" if path else str(key))

"""The single feature registry used by training and inference alike.

A *feature group* is a function ``fn(bars, **params) -> {column: float64 array}`` computing
one or more causal columns from one symbol's bars (bars <= t only), registered with its
warm-up (leading rows left undefined, a function of the resolved params, defaults filled in)
and a category:

    @register(warmup=lambda period: period, category="momentum")
    def rsi(bars, period=14): ...

Every module in :mod:`factory.features.catalog` is imported by :func:`catalog`, so the
lookahead-invariance tests and the pipeline see each new group without any central list.

A group may also declare its *streaming form* next to it, in the same file: a
:class:`~factory.features.streaming.GroupStream` subclass decorated with
``@streaming(<the group's function>)`` that computes the same columns for one new bar from
O(window) state (see :mod:`factory.features.streaming`). A group without one streams through
the generic fallback (its batch function over its own trailing window).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    fn: Callable[..., Columns]
    warmup: Callable[..., int]
    category: str
    doc: str

    def parameters(self) -> list[str]:
        return list(inspect.signature(self.fn).parameters)[1:]

    def resolve(self, params: dict) -> dict:
        """``params`` with the function's defaults filled in (unknown keys raise TypeError)."""
        bound = inspect.signature(self.fn).bind_partial(None, **params)
        bound.apply_defaults()
        return dict(list(bound.arguments.items())[1:])

    def warmup_bars(self, params: dict) -> int:
        """Leading bars left undefined with these parameters."""
        return int(self.warmup(**self.resolve(params)))

    @property
    def stream(self) -> type | None:
        """The group's streaming form (a GroupStream class), or None (generic fallback)."""
        return STREAMS.get(self.name)


REGISTRY: dict[str, FeatureGroup] = {}
STREAMS: dict[str, type] = {}
_LOADED = False


def register(name: str | None = None, *, warmup: Callable[..., int], category: str):
    """Decorator adding a feature-group function to the registry."""

    def decorate(fn: Callable[..., Columns]) -> Callable[..., Columns]:
        key = name or fn.__name__
        if key in REGISTRY and REGISTRY[key].fn is not fn:
            raise ValueError(f"feature group {key!r} registered twice")
        doc = (inspect.getdoc(fn) or "").split("\n")[0]
        REGISTRY[key] = FeatureGroup(key, fn, warmup, category, doc)
        return fn

    return decorate


def streaming(group_fn: Callable[..., Columns]):
    """Class decorator: the streaming form of the registered group ``group_fn`` (declared
    next to it, after it, in the same catalog module)."""

    def decorate(cls: type) -> type:
        names = [k for k, g in REGISTRY.items() if g.fn is group_fn]
        if not names:
            raise ValueError(f"@streaming({getattr(group_fn, '__name__', group_fn)!r}): "
                             f"register the group first")
        for key in names:
            STREAMS[key] = cls
        cls.group = names[0]
        return cls

    return decorate


def catalog() -> dict[str, FeatureGroup]:
    """All registered feature groups (imports every catalog module once), sorted by name.

    Sorted, not in registration order: that order depends on which module some caller
    imported first, and column order feeds the greedy correlation pruning, so the same
    config must always give the same columns.
    """
    global _LOADED
    if not _LOADED:  # the pipeline asks per group and rung: scan the package once
        from factory.features import catalog as package

        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            importlib.import_module(f"{package.__name__}.{info.name}")
        _LOADED = True
    return dict(sorted(REGISTRY.items()))

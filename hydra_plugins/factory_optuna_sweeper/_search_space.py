"""Hydra override syntax -> optuna distributions.

The leading underscore keeps Hydra's plugin scan from importing this module (and optuna)
on every run; the sweeper imports it when a sweep starts.

==============================================  =========================================
override                                        distribution
==============================================  =========================================
``choice(a,b)`` / ``a,b,c`` / ``shuffle(range)``  CategoricalDistribution
``range(1,10)`` (Hydra semantics: stop excluded)  IntDistribution(1, 9, step=1)
``range(0,1,0.25)``                              FloatDistribution(0, 0.75, step=0.25)
``interval(0.01,0.3)``                           FloatDistribution(0.01, 0.3)
``int(interval(1,10))``                          IntDistribution(1, 10)
``tag(log, interval(1e-4,1))``                   FloatDistribution(1e-4, 1, log=True)
anything else (``5``, ``adam``, ``[1,2]``)        fixed value, passed to every job
==============================================  =========================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


def _dec(x: float) -> Decimal:
    return Decimal(str(x))


def _range_distribution(sweep: RangeSweep) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    assert start is not None and stop is not None
    if step == 0:
        raise ValueError("range() step must not be 0")
    n = math.ceil((stop - start) / step)
    if n <= 0:
        raise ValueError(f"range({start}, {stop}, {step}) is empty")
    last = start + (n - 1) * step
    if all(isinstance(v, int) for v in (start, stop, step)):
        return IntDistribution(min(start, last), max(start, last), step=abs(step))
    last = float(_dec(start) + (n - 1) * _dec(step))  # exact decimal grid, no 0.30000000000000004
    return FloatDistribution(min(start, last), max(start, last), step=abs(float(step)))


def distribution_from_override(override: Override) -> BaseDistribution | str | None:
    """A distribution for a sweep override, else the value string of a plain override
    (None for a bare deletion ``~key``)."""
    if not override.is_sweep_override():
        return None if override.value() is None else override.get_value_element_as_str()
    sweep = override.value()
    if isinstance(sweep, ChoiceSweep) or (isinstance(sweep, RangeSweep) and sweep.shuffle):
        # encode() turns lists/dicts/escaped strings back into override text
        return CategoricalDistribution(
            list(override.sweep_iterator(transformer=Transformer.encode))
        )
    if isinstance(sweep, RangeSweep):
        return _range_distribution(sweep)
    if isinstance(sweep, IntervalSweep):
        assert sweep.start is not None and sweep.end is not None
        log = "log" in sweep.tags
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    raise ValueError(
        f"'{override.input_line}': {type(sweep).__name__} is not supported by the optuna sweeper "
        "(use choice, range, interval, tag(log, interval) or a comma list)"
    )


def parse_overrides(
    overrides: Iterable[str],
) -> tuple[dict[str, BaseDistribution], dict[str, str | None]]:
    """Split overrides into a search space and fixed values; a later key replaces an earlier one."""
    search: dict[str, BaseDistribution] = {}
    fixed: dict[str, str | None] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element()  # keeps the +/++/~ prefix and @package
        value = distribution_from_override(override)
        search.pop(key, None)
        fixed.pop(key, None)
        if isinstance(value, BaseDistribution):
            search[key] = value
        else:
            fixed[key] = value
    return search, fixed


def distribution_from_config(cfg: Mapping[str, Any]) -> BaseDistribution:
    """The deprecated upstream ``search_space`` entry: {type, low, high, log, step, choices}."""
    kind = str(cfg["type"]).rsplit(".", 1)[-1]
    if kind == "categorical":
        return CategoricalDistribution(list(cfg["choices"]))
    low, high, log, step = cfg.get("low"), cfg.get("high"), bool(cfg.get("log")), cfg.get("step")
    if kind == "int":
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    if kind == "float":
        return FloatDistribution(float(low), float(high), log=log, step=step)
    raise ValueError(f"search_space type must be int, float or categorical, got {cfg['type']!r}")


def grid_values(name: str, dist: BaseDistribution) -> list[Any]:
    """The points GridSampler enumerates for one parameter."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        n = round((dist.high - dist.low) / dist.step) + 1
        return [float(_dec(dist.low) + i * _dec(dist.step)) for i in range(n)]
    raise ValueError(
        f"GridSampler needs a discrete search space; '{name}' is {dist} "
        "(use choice(...), range(...) or a comma list)"
    )

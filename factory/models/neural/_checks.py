"""Validation shared by the torch networks: each error names the YAML key and a fix."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from factory.errors import FactoryError


def check_sequence_shape(name: str, input_shape: tuple[int, ...], n_classes: int) -> None:
    """Raise when ``input_shape`` is not ``(seq_len, n_features)`` or ``n_classes`` < 2."""
    shape = tuple(input_shape)
    if len(shape) != 2 or any(int(s) < 1 for s in shape):
        raise FactoryError(
            f"{name}: input_shape must be (seq_len, n_features) with positive sizes, got "
            f"{shape}; sequence networks need `adapter=sequence`"
        )
    if int(n_classes) < 2:
        raise FactoryError(f"{name}: n_classes must be >= 2, got {n_classes}")


def check_dropout(name: str, dropout: float) -> None:
    """Raise unless 0 <= dropout < 1 (naming the YAML key)."""
    if not (isinstance(dropout, numbers.Real) and 0.0 <= dropout < 1.0):
        raise FactoryError(
            f"{name}: `model.network.dropout` must be in [0, 1), got {dropout!r} "
            f"(try `model.network.dropout=0.1`)"
        )


def check_int(name: str, key: str, value: int, example: int, minimum: int = 1) -> None:
    """Raise unless ``value`` is an int >= ``minimum`` (naming ``model.network.<key>``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise FactoryError(
            f"{name}: `model.network.{key}` must be an int >= {minimum}, got {value!r} "
            f"(try `model.network.{key}={example}`)"
        )


def check_int_list(name: str, key: str, values, example: str) -> tuple[int, ...]:
    """``values`` as a tuple of ints >= 1, or raise naming ``model.network.<key>``."""
    if (isinstance(values, str) or not isinstance(values, Sequence) or not values
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1
                   for v in values)):
        raise FactoryError(
            f"{name}: `model.network.{key}` must be a non-empty list of positive ints, got "
            f"{values!r} (try `model.network.{key}={example}`)"
        )
    return tuple(int(v) for v in values)

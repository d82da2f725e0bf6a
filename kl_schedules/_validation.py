"""Eager argument checks shared by every factory: each error names the argument."""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

INT32_MAX = 2**31 - 1


def check_count(name: str, value: Any, minimum: int = 1, maximum: int = INT32_MAX) -> int:
    """Returns ``value`` as a Python int in [minimum, maximum] or raises naming ``name``.

    Accepts Python, NumPy and torch integers and integral floats (``5.0``); rejects bools,
    strings, non-integral or non-finite floats.
    """
    if isinstance(value, bool) or getattr(value, "dtype", None) == "bool":
        raise TypeError(f"{name} must be an integer, got bool {value!r}")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an integer, got string {value!r}")
    try:
        result = operator.index(value)
    except TypeError:
        if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
            result = int(float(value))
        elif isinstance(value, numbers.Real):
            raise ValueError(f"{name} must be an integer, got {value!r}") from None
        else:
            raise TypeError(
                f"{name} must be an integer, got {type(value).__name__}: {value!r}"
            ) from None
    if not minimum <= result <= maximum:
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}")
    return result


def check_real(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Returns ``value`` as a finite Python float inside the given interval or raises."""
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
    if not isinstance(value, numbers.Real):
        try:
            value = float(value)  # NumPy / torch / JAX 0-d values
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be a real number, got {type(value).__name__}: {value!r}"
            ) from None
    result = float(value)
    too_low = result <= low if low_open else result < low
    too_high = result >= high if high_open else result > high
    if not math.isfinite(result) or too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return result


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}: {value!r}")
    return value

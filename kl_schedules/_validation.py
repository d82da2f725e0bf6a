"""Eager argument checks, in one place for every factory and host object.

Every check names the argument, the value and what is allowed, and raises an
:class:`ArgumentError` (a ``ValueError``) whose ``argument`` attribute holds the argument's
name as data, so callers (the command line) map an error to its option without reading the
text. One rule for NumPy: NumPy scalars and 0-d arrays are accepted wherever the Python type
is (``np.int64`` as a count, ``np.float32`` as a real, ``np.bool_`` as a flag); a bool is
never a number, and a number is never a flag. A wrong *type* raises
:class:`ArgumentTypeError`, which is both a ``TypeError`` and an :class:`ArgumentError`, so
code written for the original ``Annealer`` (which raised ``ValueError`` for everything)
still catches it.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping
from typing import Any

INT32_MAX = 2**31 - 1


class ArgumentError(ValueError):
    """A bad argument; ``argument`` names it (``None`` when no single argument is at fault).

    Examples:
      >>> from kl_schedules import ArgumentError, cyclical_schedule
      >>> try:
      ...     cyclical_schedule(period=10, ratio=2.0)
      ... except ArgumentError as error:
      ...     print(error.argument)
      ratio
    """

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument

    def __reduce__(self) -> Any:  # pickles with its argument (multiprocessing, pytest-xdist)
        return _rebuild_error, (type(self), str(self), self.argument)


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type; ``except TypeError`` and ``except ValueError`` catch it."""


def _rebuild_error(cls: type[ArgumentError], message: str, argument: str | None) -> ArgumentError:
    return cls(message, argument=argument)


def _is_bool(value: Any) -> bool:
    """Python and NumPy bools, and 0-d bool arrays of any framework (by their dtype)."""
    if isinstance(value, bool):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and str(dtype) in ("bool", "torch.bool")


def _describe(value: Any) -> str:
    return f"{type(value).__name__}: {value!r}"


def check_count(name: str, value: Any, minimum: int = 1, maximum: int = INT32_MAX) -> int:
    """Returns ``value`` as a Python int in ``[minimum, maximum]`` or raises naming ``name``.

    Accepts Python, NumPy and torch integers, 0-d integer arrays and integral floats
    (``5.0``); rejects bools, strings, non-integral or non-finite floats.
    """
    if _is_bool(value) or isinstance(value, (str, bytes)):
        raise ArgumentTypeError(f"{name} must be an integer, got {_describe(value)}", argument=name)
    try:
        result = operator.index(value)
    except TypeError:
        real = _as_real(value)
        if real is None:
            raise ArgumentTypeError(
                f"{name} must be an integer, got {_describe(value)}", argument=name
            ) from None
        if not (math.isfinite(real) and real.is_integer()):
            raise ArgumentError(
                f"{name} must be an integer, got {value!r}", argument=name
            ) from None
        result = int(real)
    if not minimum <= result <= maximum:
        raise ArgumentError(
            f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}", argument=name
        )
    return result


def _as_real(value: Any) -> float | None:
    """A finite-or-not Python float for a real number (incl. 0-d arrays), else None."""
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "shape", None) == ():
        try:
            return float(value)  # 0-d NumPy / torch / JAX values
        except (TypeError, ValueError, RuntimeError):
            return None
    return None


def _real_or_raise(name: str, value: Any) -> float:
    """A real number (incl. a 0-d array or tensor) as a Python float, finite or not;
    anything else, bools and strings included, raises naming ``name``."""
    result = None if _is_bool(value) or isinstance(value, (str, bytes)) else _as_real(value)
    if result is None:
        raise ArgumentTypeError(
            f"{name} must be a real number, got {_describe(value)}", argument=name
        )
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
    result = _real_or_raise(name, value)
    too_low = result <= low if low_open else result < low
    too_high = result >= high if high_open else result > high
    if not math.isfinite(result) or too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ArgumentError(
            f"{name} must be a finite number in {interval}, got {value!r}", argument=name
        )
    return result


def check_beta_bounds(beta_min: float, beta_max: float) -> None:
    """Raises unless ``beta_min < beta_max`` (the clamp of a controller's beta)."""
    if beta_max <= beta_min:
        raise ArgumentError(
            f"beta_max must be > beta_min, got {beta_max!r} <= {beta_min!r}", argument="beta_max"
        )


def check_measurement(name: str, value: Any) -> float:
    """A measured number fed to a controller (a Python or NumPy number, or a 0-d tensor or
    array of any framework) as a Python float; NaN and infinities pass (controllers skip
    them). Anything else raises: bools, strings, and arrays that are not 0-d (even with one
    element)."""
    if isinstance(value, float):
        return value  # the per-step fast path
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)  # ints and NumPy numbers (np.bool_ is no numbers.Real)
    return _real_or_raise(name, value)


def check_keys(
    name: str, state: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> None:
    """Checks that ``state`` is a mapping with every ``required`` key and no unknown one."""
    if not isinstance(state, Mapping):
        raise ArgumentTypeError(f"{name} must be a dict, got {_describe(state)}", argument=name)
    missing = [key for key in required if key not in state]
    unknown = sorted(set(state) - set(required) - set(optional))
    if missing or unknown:
        raise ArgumentError(
            f"{name} must have the keys {list(required)}"
            + (f" (optionally {list(optional)})" if optional else "")
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else ""),
            argument=name,
        )


def check_bool(name: str, value: Any) -> bool:
    """Returns a Python bool for a Python or NumPy bool (or a concrete 0-d bool array)."""
    if not _is_bool(value) or getattr(value, "shape", ()) != ():
        raise ArgumentTypeError(f"{name} must be a bool, got {_describe(value)}", argument=name)
    try:
        return bool(value)
    except Exception:  # a traced JAX bool has no concrete value
        raise ArgumentTypeError(
            f"{name} must be a concrete bool here, got a traced value {value!r}", argument=name
        ) from None


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Returns ``value`` if it is one of the strings ``choices``, else raises."""
    if not isinstance(value, str):
        raise ArgumentTypeError(
            f"{name} must be one of {list(choices)}, got {_describe(value)}", argument=name
        )
    if value not in choices:
        raise ArgumentError(f"{name} must be one of {list(choices)}, got {value!r}", argument=name)
    return value


def check_measurement_kind(name: str, value: Any) -> None:
    """The type rule of :func:`check_measurement` without reading the value, so it holds
    for traced arrays too (the pure controllers under ``jit``): a Python or NumPy number or
    a 0-d array of a real dtype passes; bools, strings and arrays that are not 0-d raise."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return
    dtype = str(getattr(value, "dtype", "")).removeprefix("torch.")
    real = dtype.startswith(("float", "bfloat", "int", "uint"))
    if getattr(value, "shape", None) != () or not real:
        raise ArgumentTypeError(f"{name} must be a real number, got {_describe(value)}")


def check_measured_float(name: str, value: Any) -> float:
    """:func:`check_measurement`, detaching a torch tensor that requires grad first (so
    reading it raises no warning)."""
    if isinstance(value, float):
        return value  # the per-step fast path
    if getattr(value, "requires_grad", False):
        value = value.detach()
    return check_measurement(name, value)

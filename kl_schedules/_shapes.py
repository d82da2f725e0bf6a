"""Ramp shapes: maps from progress ``p`` in [0, 1] to a weight in [0, 1].

Every shape is written once, against a small math namespace (``JAX_MATH`` for traced
arrays, ``PY_MATH`` for Python floats on the host), so that the jitted schedules and the
host-side :class:`~kl_schedules.Annealer` share one definition of the maths.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from kl_schedules._backend import JAX_MATH, MathBackend

ShapeFn = Callable[[Any], Any]

#: Fu et al.'s sigmoid steepness: ``sig(12 p - 6)`` over one ramp.
DEFAULT_STEEPNESS = 12.0


def linear(p: Any, xp: MathBackend = JAX_MATH) -> Any:
    r"""Linear ramp: :math:`f(p) = p`."""
    del xp
    return p


def cosine(p: Any, xp: MathBackend = JAX_MATH) -> Any:
    r"""Cosine ramp: :math:`f(p) = (1 - \cos(\pi p)) / 2`, so f(0) = 0 and f(1) = 1."""
    return (1.0 - xp.cos(xp.pi * p)) / 2.0


def logistic(p: Any, steepness: float = DEFAULT_STEEPNESS, xp: MathBackend = JAX_MATH) -> Any:
    r"""Logistic ramp rescaled to hit 0 and 1 exactly.

    .. math::
        f(p) = \frac{\sigma(k (p - 1/2)) - \sigma(-k/2)}{\sigma(k/2) - \sigma(-k/2)}
             = \frac{1}{2}\left(1 + \frac{\tanh(k (p - 1/2) / 2)}{\tanh(k / 4)}\right)

    The ``tanh`` form is used: it has no cancellation for small ``k``, and since ``tanh`` is
    odd and both tanh values are computed in the same precision, f(0) = 0 and f(1) = 1
    exactly. ``k`` (``steepness``) is in units of the whole ramp.
    """
    return 0.5 * (1.0 + xp.tanh(steepness * (p - 0.5) / 2.0) / xp.tanh(steepness / 4.0))


def raw_logistic(steps_from_centre: Any, xp: MathBackend = JAX_MATH) -> Any:
    r"""The documented Annealer's un-rescaled logistic, :math:`1 / (1 + e^{T/2 - s})`.

    Takes ``s - T/2`` (steepness one per step) and evaluates :math:`\sigma(s - T/2)` in a
    form that never overflows.
    """
    return xp.sigmoid(steps_from_centre)


SHAPE_NAMES = ("linear", "cosine", "logistic")


def resolve_shape(shape: str | ShapeFn, steepness: float = DEFAULT_STEEPNESS) -> ShapeFn:
    """Returns the JAX ramp ``p -> [0, 1]`` for a shape name or a user callable.

    Raises:
      ValueError: ``shape`` is a string that names no shape, or ``steepness`` is not a
        finite number > 0.
      TypeError: ``shape`` is neither a string nor callable.
    """
    validate_steepness(steepness)
    if isinstance(shape, str):
        if shape == "linear":
            return linear
        if shape == "cosine":
            return cosine
        if shape == "logistic":
            return lambda p: logistic(p, steepness)
        raise ValueError(f"shape must be one of {list(SHAPE_NAMES)} or a callable, got {shape!r}")
    if callable(shape):
        return shape
    raise TypeError(
        f"shape must be one of {list(SHAPE_NAMES)} or a callable p -> [0, 1], "
        f"got {type(shape).__name__}: {shape!r}"
    )


def validate_steepness(steepness: float) -> None:
    if isinstance(steepness, bool) or not isinstance(steepness, (int, float)):
        raise TypeError(f"steepness must be a real number > 0, got {steepness!r}")
    if not math.isfinite(steepness) or steepness <= 0:
        raise ValueError(f"steepness must be a finite number > 0, got {steepness!r}")

"""Ramp shapes: maps from progress ``p`` in [0, 1] to a weight in [0, 1].

Every shape is written once against a math namespace (see ``_backend``), so the jitted
schedules and the host :class:`~kl_schedules.Annealer` share one definition of the maths.
``SHAPES`` is the one registry of shape names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from kl_schedules._backend import JAX_MATH, MathBackend
from kl_schedules._validation import ArgumentError, ArgumentTypeError, check_real

ShapeFn = Callable[[Any], Any]

#: Fu et al.'s sigmoid steepness: ``sig(12 p - 6)`` over one ramp.
DEFAULT_STEEPNESS = 12.0


def _linear(p: Any, steepness: float, xp: MathBackend) -> Any:
    del steepness, xp
    return p


def _cosine(p: Any, steepness: float, xp: MathBackend) -> Any:
    del steepness
    return (1.0 - xp.cos(xp.pi * p)) / 2.0


def _logistic(p: Any, steepness: float, xp: MathBackend) -> Any:
    return 0.5 * (1.0 + xp.tanh(steepness * (p - 0.5) / 2.0) / xp.tanh(steepness / 4.0))


#: The shape registry: name -> ``f(p, steepness, xp)``, written once for both namespaces.
SHAPES: dict[str, Callable[[Any, float, MathBackend], Any]] = {
    "linear": _linear,
    "cosine": _cosine,
    "logistic": _logistic,
}
SHAPE_NAMES = tuple(SHAPES)


def linear(p: Any) -> Any:
    r"""Linear ramp: :math:`f(p) = p`."""
    return _linear(p, DEFAULT_STEEPNESS, JAX_MATH)


def cosine(p: Any) -> Any:
    r"""Cosine ramp: :math:`f(p) = (1 - \cos(\pi p)) / 2`, so f(0) = 0 and f(1) = 1."""
    return _cosine(p, DEFAULT_STEEPNESS, JAX_MATH)


def logistic(p: Any, steepness: float = DEFAULT_STEEPNESS) -> Any:
    r"""Logistic ramp rescaled to hit 0 and 1 exactly.

    .. math::
        f(p) = \frac{\sigma(k (p - 1/2)) - \sigma(-k/2)}{\sigma(k/2) - \sigma(-k/2)}
             = \frac{1}{2}\left(1 + \frac{\tanh(k (p - 1/2) / 2)}{\tanh(k / 4)}\right)

    The ``tanh`` form is used: it has no cancellation for small ``k``, and since ``tanh`` is
    odd and both tanh values are computed in the same precision, f(0) = 0 and f(1) = 1
    exactly. ``k`` (``steepness``) is in units of the whole ramp.
    """
    return _logistic(p, steepness, JAX_MATH)


#: The steepness range: ``k`` and ``k / 4`` stay normal float32 numbers, so the logistic
#: ramp is never ``0 / 0`` or ``inf * 0`` (below it the ramp is linear to float32 precision).
STEEPNESS_RANGE = (1e-30, 1e30)


def check_steepness(steepness: Any) -> float:
    """``steepness`` as a float in :data:`STEEPNESS_RANGE`, or raises naming it."""
    return check_real("steepness", steepness, *STEEPNESS_RANGE)


#: The public ramp functions stand for their names (so schedules built with them compare
#: equal to, and serialise like, schedules built with the names).
_NAME_OF_FUNCTION: dict[Any, str] = {linear: "linear", cosine: "cosine", logistic: "logistic"}


def check_shape(shape: Any, *, allow_callable: bool = True) -> str | ShapeFn:
    """Returns the registered name ``shape`` is or stands for, as a plain ``str`` (or, if
    allowed, a user callable)."""
    if isinstance(shape, str) and shape in SHAPES:
        return str(shape)  # a NumPy str_ too, as a plain str (it pickles everywhere)
    for function, name in _NAME_OF_FUNCTION.items():
        if shape is function:  # by identity: a user's callable need not be hashable
            return name
    if allow_callable and callable(shape) and not isinstance(shape, str):
        return cast(ShapeFn, shape)
    allowed = f"one of {list(SHAPE_NAMES)}"
    if isinstance(shape, str):  # a name was meant: the names are what is allowed
        raise ArgumentError(f"shape must be {allowed}, got {shape!r}", argument="shape")
    if allow_callable:
        allowed += " or a callable p -> [0, 1]"
    raise ArgumentTypeError(
        f"shape must be {allowed}, got {type(shape).__name__}: {shape!r}", argument="shape"
    )


def ramp_function(
    shape: str | ShapeFn, steepness: float = DEFAULT_STEEPNESS, xp: MathBackend = JAX_MATH
) -> ShapeFn:
    """The ramp ``p -> [0, 1]`` of a checked shape name (in namespace ``xp``) or a callable."""
    if not isinstance(shape, str):
        return shape
    formula = SHAPES[shape]
    return lambda p: formula(p, steepness, xp)

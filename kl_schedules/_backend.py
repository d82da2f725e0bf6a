"""Private: two math namespaces with one interface, and the float dtype rule.

Contract. A formula that must run both inside ``jax.jit`` and on a host per-step path (the
ramp shapes, the Annealer's weight and stepping rule, the PI and GECO updates)
is written once as a function taking an ``xp`` argument, and called with

- ``JAX_MATH``: ``jax.numpy`` functions; arguments may be traced arrays; or
- ``PY_MATH``: the same operations on Python numbers (about 0.1 us each, no JAX dispatch).

Only the operations of :class:`MathBackend` may be used on values, plus the arithmetic and
comparison operators. ``where(c, x, y)`` evaluates both branches in both namespaces, so both
must be safe to compute (no division by zero, no overflow) for every input. ``xp`` never
appears in a public signature.
"""

from __future__ import annotations

import math
import types
from typing import Any, Protocol, cast

import jax
import jax.numpy as jnp


def float_dtype() -> Any:
    """The float dtype of every result: float32, or float64 when ``jax_enable_x64`` is on.

    Called at call time (never cached at construction), so a schedule or controller built
    before ``jax.config.update("jax_enable_x64", True)`` follows the setting in force when
    it is evaluated.
    """
    return jnp.result_type(float)


class MathBackend(Protocol):
    """The operations a shared formula may use (besides arithmetic and comparisons)."""

    pi: float

    def cos(self, x: Any) -> Any: ...
    def tanh(self, x: Any) -> Any: ...
    def exp(self, x: Any) -> Any: ...
    def log(self, x: Any) -> Any: ...
    def sigmoid(self, x: Any) -> Any: ...
    def clip(self, x: Any, low: Any, high: Any) -> Any: ...
    def where(self, condition: Any, x: Any, y: Any) -> Any: ...
    def isfinite(self, x: Any) -> Any: ...
    def logical_and(self, x: Any, y: Any) -> Any: ...


def _py_sigmoid(x: float) -> float:
    """Logistic function on a Python float, without overflow for any ``x``."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _py_clip(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


def _py_where(condition: bool, x: Any, y: Any) -> Any:
    return x if condition else y


def _py_and(x: bool, y: bool) -> bool:
    return x and y


#: Functions that ``math`` and ``jax.numpy`` both have under the same name and meaning.
_SHARED = ("cos", "tanh", "exp", "log", "isfinite")


def _namespace(library: Any, **own: Any) -> MathBackend:
    """A :class:`MathBackend`: ``library``'s shared functions, and its ``own`` others."""
    functions = {name: getattr(library, name) for name in _SHARED}
    return cast(MathBackend, types.SimpleNamespace(pi=math.pi, **functions, **own))


PY_MATH = _namespace(math, sigmoid=_py_sigmoid, clip=_py_clip, where=_py_where, logical_and=_py_and)
JAX_MATH = _namespace(
    jnp, sigmoid=jax.nn.sigmoid, clip=jnp.clip, where=jnp.where, logical_and=jnp.logical_and
)

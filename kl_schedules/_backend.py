"""Private: two math namespaces with one interface, and the float dtype rule.

Contract. A formula that must run both inside ``jax.jit`` and on a host per-step path (the
ramp shapes, the documented annealer's weight and stepping rule, the PI and GECO updates)
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
from typing import Any, Protocol

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


class _PyMath:
    pi = math.pi
    cos = staticmethod(math.cos)
    tanh = staticmethod(math.tanh)
    exp = staticmethod(math.exp)
    log = staticmethod(math.log)
    sigmoid = staticmethod(_py_sigmoid)
    isfinite = staticmethod(math.isfinite)

    @staticmethod
    def clip(x: float, low: float, high: float) -> float:
        return min(max(x, low), high)

    @staticmethod
    def where(condition: bool, x: Any, y: Any) -> Any:
        return x if condition else y

    @staticmethod
    def logical_and(x: bool, y: bool) -> bool:
        return x and y


class _JaxMath:
    pi = math.pi
    cos = staticmethod(jnp.cos)
    tanh = staticmethod(jnp.tanh)
    exp = staticmethod(jnp.exp)
    log = staticmethod(jnp.log)
    sigmoid = staticmethod(jax.nn.sigmoid)
    isfinite = staticmethod(jnp.isfinite)
    logical_and = staticmethod(jnp.logical_and)

    @staticmethod
    def clip(x: Any, low: Any, high: Any) -> Any:
        return jnp.clip(x, low, high)

    @staticmethod
    def where(condition: Any, x: Any, y: Any) -> Any:
        return jnp.where(condition, x, y)


PY_MATH: MathBackend = _PyMath()
JAX_MATH: MathBackend = _JaxMath()

"""Two math namespaces with one interface: ``JAX_MATH`` (jax.numpy, traceable) and
``PY_MATH`` (Python floats, ~0.1 us per op, no JAX dispatch).

Formulas that run both inside ``jit`` and on a host per-step path (ramp shapes, the
documented annealer, the feedback controllers) are written once against this interface.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import jax
import jax.numpy as jnp


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

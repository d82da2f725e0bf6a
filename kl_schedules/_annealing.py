"""The documented stateful annealer as pure functions over an immutable pytree state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kl_schedules import _shapes
from kl_schedules._backend import JAX_MATH, MathBackend
from kl_schedules._shapes import SHAPE_NAMES, ShapeFn
from kl_schedules._validation import check_count, check_real


def documented_weight(
    total_steps: int, shape: str | ShapeFn, baseline: float, xp: MathBackend
) -> Callable[[Any], Any]:
    r"""The documented Annealer's weight as a function of the step ``s``.

    .. math::
        y(s) &= s / T                         &&\text{linear} \\
        y(s) &= (1 - \cos(\pi s / T)) / 2     &&\text{cosine} \\
        y(s) &= 1 / (1 + e^{T/2 - s})         &&\text{logistic (not rescaled)} \\
        w(s) &= y(s)\,(1 - b) + b

    with :math:`T` = ``total_steps`` and :math:`b` = ``baseline``. ``xp`` is the math backend:
    ``PY_MATH`` on the host (Python floats), ``JAX_MATH`` inside ``jit``. Arguments are
    assumed validated.
    """
    lift = 1.0 - baseline
    half = total_steps / 2.0
    if shape == "linear":
        return lambda s: (s / total_steps) * lift + baseline
    if shape == "cosine":
        return lambda s: _shapes.cosine(s / total_steps, xp) * lift + baseline
    if shape == "logistic":
        return lambda s: _shapes.raw_logistic(s - half, xp) * lift + baseline
    assert callable(shape), shape  # names were handled above
    return lambda s: shape(s / total_steps) * lift + baseline


def check_shape_name(shape: Any, allow_callable: bool) -> str | ShapeFn:
    if isinstance(shape, str) and shape in SHAPE_NAMES:
        return shape
    if allow_callable and callable(shape) and not isinstance(shape, str):
        return shape
    allowed = f"one of {list(SHAPE_NAMES)}" + (
        " or a callable p -> [0, 1]" if allow_callable else ""
    )
    if isinstance(shape, str):
        raise ValueError(f"shape must be {allowed}, got {shape!r}")
    raise TypeError(f"shape must be {allowed}, got {type(shape).__name__}: {shape!r}")


class AnnealerState(NamedTuple):
    """Immutable state of the documented annealer: a pytree of two scalars.

    Attributes:
      step: the step counter ``s``, an int32 scalar in ``[0, total_steps]``.
      cyclical: whether :func:`Annealing.step` wraps to 0 on reaching ``total_steps``, a
        bool scalar.
    """

    step: jax.Array
    cyclical: jax.Array


def _check_flag(name: str, flag: Any) -> jax.Array:
    """A bool, NumPy bool or bool array (traced allowed) as a bool scalar array."""
    if isinstance(flag, (bool, np.bool_)) or getattr(flag, "dtype", None) == jnp.bool_:
        return jnp.asarray(flag, dtype=jnp.bool_)
    raise TypeError(f"{name} must be a bool or a bool array, got {type(flag).__name__}: {flag!r}")


class Annealing(NamedTuple):
    """The pure functions of :func:`annealing`; every one is jit/vmap/scan compatible."""

    init: Callable[..., AnnealerState]
    step: Callable[[AnnealerState], AnnealerState]
    beta: Callable[[AnnealerState], jax.Array]
    set_cyclical: Callable[[AnnealerState, Any], AnnealerState]


def annealing(
    total_steps: int, shape: str | ShapeFn = "linear", baseline: float = 0.0
) -> Annealing:
    r"""The documented stateful annealer, as pure functions over :class:`AnnealerState`.

    Stepping rule (``s`` = ``state.step``, ``T`` = ``total_steps``)::

        s <- s + 1 if s < T else s
        s <- 0 if state.cyclical and s >= T else s

    so a plain annealer saturates at ``s = T`` and a cyclical one visits 0, 1, ..., T - 1, 0.
    Weight: see :func:`documented_weight` (linear ``s/T``, cosine, un-rescaled logistic
    ``1/(1 + exp(T/2 - s))``, computed without overflow for any ``T``), lifted by
    ``baseline``.

    Args:
      total_steps: ``T``, an integer >= 1.
      shape: ``"linear"``, ``"cosine"``, ``"logistic"`` or a callable ``p -> [0, 1]``
        applied to ``s / T``.
      baseline: weight at ``s = 0``, in [0, 1]; the weight runs from ``baseline`` to 1.

    Returns:
      An :class:`Annealing` with ``init(cyclical=False)``, ``step(state)``, ``beta(state)``
      and ``set_cyclical(state, flag)``.

    Examples:
      >>> import jax
      >>> from kl_schedules import annealing
      >>> annealer = annealing(total_steps=4)
      >>> state = annealer.init(cyclical=True)
      >>> betas = []
      >>> for _ in range(6):
      ...     betas.append(float(annealer.beta(state)))
      ...     state = jax.jit(annealer.step)(state)
      >>> betas
      [0.0, 0.25, 0.5, 0.75, 0.0, 0.25]
    """
    total_steps = check_count("total_steps", total_steps)
    shape = check_shape_name(shape, allow_callable=True)
    baseline = check_real("baseline", baseline, 0.0, 1.0)
    weight = documented_weight(total_steps, shape, baseline, JAX_MATH)

    def init(cyclical: Any = False) -> AnnealerState:
        return AnnealerState(
            step=jnp.zeros((), dtype=jnp.int32), cyclical=_check_flag("cyclical", cyclical)
        )

    def step(state: AnnealerState) -> AnnealerState:
        s = state.step
        s = jnp.where(s < total_steps, s + 1, s)
        s = jnp.where(state.cyclical & (s >= total_steps), jnp.zeros_like(s), s)
        return state._replace(step=s)

    def beta(state: AnnealerState) -> jax.Array:
        s = jnp.asarray(state.step).astype(jnp.result_type(float))
        return weight(s)

    def set_cyclical(state: AnnealerState, flag: Any) -> AnnealerState:
        return state._replace(cyclical=_check_flag("flag", flag))

    return Annealing(init=init, step=step, beta=beta, set_cyclical=set_cyclical)

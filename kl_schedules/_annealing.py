"""The Annealer's rule, written once for Python and JAX, and its pure functional form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from kl_schedules._backend import JAX_MATH, MathBackend, float_dtype
from kl_schedules._shapes import DEFAULT_STEEPNESS, SHAPES, ShapeFn, check_shape
from kl_schedules._validation import ArgumentTypeError, check_count, check_real

# ---- the rule, for both namespaces ---------------------------------------------------------


def annealer_weight(
    total_steps: int, shape: str | ShapeFn, baseline: float, xp: MathBackend
) -> Callable[[Any], Any]:
    r"""The ``Annealer``'s weight as a function of the step ``s``.

    .. math::
        y(s) &= s / T                         &&\text{linear} \\
        y(s) &= (1 - \cos(\pi s / T)) / 2     &&\text{cosine} \\
        y(s) &= 1 / (1 + e^{T/2 - s})         &&\text{logistic (not rescaled)} \\
        w(s) &= y(s)\,(1 - b) + b

    with :math:`T` = ``total_steps`` and :math:`b` = ``baseline``; a callable shape gets
    :math:`s / T`. :math:`s / T` is taken as exactly 1 at :math:`s = T` (under ``jit`` XLA
    would compute it as :math:`s \cdot (1/T)`); the logistic is evaluated as
    :math:`\sigma(s - T/2)`, which never overflows. ``xp`` is the math namespace: the
    host :class:`~kl_schedules.Annealer` uses plain Python, :func:`annealing` JAX.
    Arguments are assumed validated.
    """
    lift = 1.0 - baseline
    if shape == "logistic":
        half = total_steps / 2.0
        return lambda s: xp.sigmoid(s - half) * lift + baseline
    if callable(shape):
        return lambda s: shape(xp.where(s >= total_steps, 1.0, s / total_steps)) * lift + baseline
    formula = SHAPES[shape]
    return lambda s: (
        formula(xp.where(s >= total_steps, 1.0, s / total_steps), DEFAULT_STEEPNESS, xp) * lift
        + baseline
    )


def annealer_step(step: Any, total_steps: int, cyclical: Any) -> Any:
    """The ``Annealer``'s ``step()`` on the step count ``s`` (``0 <= s <= T``)::

        s <- s + 1 if s < T else s
        s <- 0 if cyclical and s >= T else s

    so a plain annealer saturates at ``s = T`` and a cyclical one visits 0, 1, ..., T - 1, 0.
    Written with operators only, valid for Python ints and bools (the host ``Annealer``)
    and for JAX int32 and bool arrays (:func:`annealing`): after the first line ``s <= T``,
    so ``s >= T`` means ``s == T`` and subtracting ``T`` wraps to 0.
    """
    step = step + (step < total_steps)
    return step - total_steps * (cyclical & (step >= total_steps))


# ---- pure functions over an immutable state ------------------------------------------------


class AnnealerState(NamedTuple):
    """Immutable state of :func:`annealing`: a pytree of two scalars.

    Attributes:
      step: the step counter ``s``, an int32 scalar in ``[0, total_steps]``.
      cyclical: whether :func:`Annealing.step` wraps to 0 on reaching ``total_steps``, a
        bool scalar.
    """

    step: jax.Array
    cyclical: jax.Array


def _as_flag(name: str, flag: Any) -> jax.Array:
    """A bool, NumPy bool or bool array (traced allowed) as a bool scalar array."""
    if isinstance(flag, bool) or str(getattr(flag, "dtype", "")) == "bool":
        if jnp.shape(flag) != ():
            raise ValueError(f"{name} must be a scalar bool, got shape {jnp.shape(flag)}")
        return jnp.asarray(flag, dtype=jnp.bool_)
    raise ArgumentTypeError(
        f"{name} must be a bool or a bool array, got {type(flag).__name__}: {flag!r}"
    )


class Annealing(NamedTuple):
    """The pure functions of :func:`annealing`; every one is jit/vmap/scan compatible."""

    init: Callable[..., AnnealerState]
    step: Callable[[AnnealerState], AnnealerState]
    beta: Callable[[AnnealerState], jax.Array]
    set_cyclical: Callable[[AnnealerState, ArrayLike], AnnealerState]


def annealing(
    total_steps: int, shape: str | ShapeFn = "linear", baseline: float = 0.0
) -> Annealing:
    r"""The stateful ``Annealer`` as pure functions over :class:`AnnealerState`.

    Stepping rule (``s`` = ``state.step``, ``T`` = ``total_steps``; see
    :func:`annealer_step`)::

        s <- s + 1 if s < T else s
        s <- 0 if state.cyclical and s >= T else s

    so a plain annealer saturates at ``s = T`` and a cyclical one visits 0, 1, ..., T - 1, 0.
    Weight (:func:`annealer_weight`): linear ``s/T``, cosine, un-rescaled logistic
    ``1/(1 + exp(T/2 - s))`` (without overflow for any ``T``), lifted by ``baseline``.
    The host :class:`~kl_schedules.Annealer` runs the same two functions in plain Python.

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
    shape = check_shape(shape)
    baseline = check_real("baseline", baseline, 0.0, 1.0)
    weight = annealer_weight(total_steps, shape, baseline, JAX_MATH)

    def init(cyclical: ArrayLike = False) -> AnnealerState:
        return AnnealerState(
            step=jnp.zeros((), dtype=jnp.int32), cyclical=_as_flag("cyclical", cyclical)
        )

    def step(state: AnnealerState) -> AnnealerState:
        return state._replace(step=annealer_step(state.step, total_steps, state.cyclical))

    def beta(state: AnnealerState) -> jax.Array:
        return jnp.asarray(weight(jnp.asarray(state.step).astype(float_dtype())))

    def set_cyclical(state: AnnealerState, flag: ArrayLike) -> AnnealerState:
        return state._replace(cyclical=_as_flag("flag", flag))

    return Annealing(init=init, step=step, beta=beta, set_cyclical=set_cyclical)

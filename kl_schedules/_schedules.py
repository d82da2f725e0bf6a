"""Schedule factories: pure, jit-compatible maps ``step -> beta`` (``optax.Schedule``)."""

from __future__ import annotations

import fractions
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kl_schedules._shapes import DEFAULT_STEEPNESS, ShapeFn, resolve_shape
from kl_schedules._validation import INT32_MAX, check_count, check_real

Schedule = Callable[[Any], jax.Array]


def float_dtype() -> jnp.dtype:
    """The default float dtype: float32, or float64 when ``jax_enable_x64`` is on."""
    return jnp.result_type(float)


def _split_step(step: Any, reduce_on_host: Callable[[Any], Any]) -> tuple[jax.Array, bool]:
    """Returns ``(step_array, is_integer)``.

    Concrete host values (Python or NumPy numbers and arrays) are first reduced exactly, in
    Python or 64-bit NumPy arithmetic, to a range that fits int32 / the default float, so that
    a Python int such as ``10**12`` never overflows. JAX values (traced or not) are used as
    they are.
    """
    if isinstance(step, (bool, np.bool_)):
        raise TypeError(f"step must be an integer or float, got bool {step!r}")
    if isinstance(step, int):
        step = reduce_on_host(step)
        return jnp.asarray(step, dtype=jnp.int32), True
    if isinstance(step, (float, np.number, np.ndarray)):
        host = np.asarray(step)
        if host.dtype.kind in "iu":
            reduced = reduce_on_host(host.astype(np.int64) if host.dtype != np.uint64 else host)
            return jnp.asarray(np.asarray(reduced).astype(np.int32)), True
        if host.dtype.kind == "f":
            reduced = reduce_on_host(host.astype(np.float64))
            return jnp.asarray(reduced, dtype=float_dtype()), False
        raise TypeError(f"step must be an integer or float, got dtype {host.dtype}")
    step = jnp.asarray(step)
    if jnp.issubdtype(step.dtype, jnp.integer):
        if step.dtype.itemsize < 4:  # int8/16 and uint8/16: widen, no value changes
            step = step.astype(jnp.int32)
        return step, True
    if jnp.issubdtype(step.dtype, jnp.floating):
        return step.astype(jnp.promote_types(step.dtype, float_dtype())), False
    raise TypeError(f"step must be an integer or float, got dtype {step.dtype}")


def constant_schedule(value: float = 1.0) -> Schedule:
    r"""A constant beta: :math:`\beta(t) = v`.

    Args:
      value: the constant, a finite number.

    Returns:
      An ``optax.Schedule`` returning ``value`` for every step (broadcast to the step's shape).

    Examples:
      >>> from kl_schedules import constant_schedule
      >>> float(constant_schedule(0.5)(1234))
      0.5
    """
    value = check_real("value", value)

    def schedule(step: Any) -> jax.Array:
        return jnp.full(jnp.shape(step), value, dtype=float_dtype())

    return schedule


def monotonic_schedule(
    total_steps: int,
    shape: str | ShapeFn = "linear",
    start: float = 0.0,
    end: float = 1.0,
    delay: int = 0,
    steepness: float = DEFAULT_STEEPNESS,
) -> Schedule:
    r"""A monotonic warm-up from ``start`` to ``end`` over ``total_steps`` after ``delay``.

    .. math::
        p(t) &= \mathrm{clip}((t - d) / T,\ 0,\ 1) \\
        \beta(t) &= \beta_0 + (\beta_1 - \beta_0)\, f(p(t))

    with :math:`T` = ``total_steps``, :math:`d` = ``delay``, :math:`f` the ramp ``shape``.
    For an integer step, :math:`t` is first clamped to :math:`[d, d + T]` in its own dtype
    (no wrap-around for unsigned steps), so every integer step is exact.

    Args:
      total_steps: length of the ramp in steps, an integer >= 1.
      shape: ``"linear"``, ``"cosine"``, ``"logistic"`` or a callable ``p -> [0, 1]``.
      start: beta before and at the start of the ramp.
      end: beta at and after ``delay + total_steps``.
      delay: steps held at ``start`` before the ramp begins, an integer >= 0.
      steepness: ``k`` of the logistic shape, in units of the whole ramp (ignored by the
        other shapes).

    Returns:
      An ``optax.Schedule``.

    Examples:
      >>> from kl_schedules import monotonic_schedule
      >>> schedule = monotonic_schedule(total_steps=100, shape="cosine", delay=10)
      >>> [round(float(schedule(t)), 4) for t in (0, 10, 60, 110, 10**12)]
      [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    total_steps = check_count("total_steps", total_steps)
    delay = check_count("delay", delay, minimum=0)
    if delay + total_steps > INT32_MAX:
        raise ValueError(f"delay + total_steps must be <= 2**31 - 1, got {delay} + {total_steps}")
    start = check_real("start", start)
    end = check_real("end", end)
    ramp = resolve_shape(shape, steepness)
    first, last = delay, delay + total_steps

    def clamp_on_host(t: Any) -> Any:
        return min(max(t, first), last) if isinstance(t, int) else np.clip(t, first, last)

    def schedule(step: Any) -> jax.Array:
        t, is_integer = _split_step(step, clamp_on_host)
        if is_integer:
            elapsed = jnp.clip(t, first, last).astype(jnp.int32) - first
            progress = elapsed.astype(float_dtype()) / total_steps
        else:
            progress = jnp.clip((t - first) / total_steps, 0.0, 1.0)
        return start + (end - start) * ramp(progress)

    return schedule


def _as_fraction(period: Any) -> fractions.Fraction:
    """``period`` as ``num / den`` with ``num * den <= 2**31 - 1``.

    An int or a ``Fraction`` is taken exactly; a float is read as the closest such rational,
    which recovers ``T / M`` exactly for every practical ``T`` and ``M``.
    """
    if isinstance(period, (bool, str, bytes)):
        raise TypeError(f"period must be a number > 0, got {type(period).__name__}: {period!r}")
    if isinstance(period, fractions.Fraction):
        exact = period
    elif isinstance(period, int):
        exact = fractions.Fraction(period)
    else:
        exact = fractions.Fraction(check_real("period", period, 0.0, low_open=True))
    if exact <= 0:
        raise ValueError(f"period must be > 0, got {period!r}")
    max_den = max(1, math.isqrt(int(INT32_MAX / exact)))
    result = exact.limit_denominator(max_den)
    if result <= 0 or result.numerator * result.denominator > INT32_MAX:
        raise ValueError(f"period must be in (0, 2**31 - 1], got {period!r}")
    return result


def cyclical_schedule(
    period: float,
    ratio: float = 0.5,
    shape: str | ShapeFn = "linear",
    start: float = 0.0,
    end: float = 1.0,
    steepness: float = DEFAULT_STEEPNESS,
) -> Schedule:
    r"""Cyclical annealing (Fu et al., 2019): ramp for a fraction ``ratio`` of each cycle, hold.

    .. math::
        \tau(t) &= (t \bmod P) / P \\
        \beta(t) &= \beta_0 + (\beta_1 - \beta_0)\, f(\min(\tau(t) / R,\ 1))

    with :math:`P` = ``period``, :math:`R` = ``ratio``, :math:`f` the ramp ``shape``. beta
    reaches ``end`` exactly at :math:`\tau = R` and holds it to the end of the cycle; the
    cycle repeats for ever. For ``M`` cycles over ``T`` steps pass ``period=T / M`` (a float
    is fine: it is read as the exact rational ``num / den``, and an integer step is reduced
    as :math:`((t \bmod num) \cdot den) \bmod num` in integer arithmetic, so step
    ``2**31 - 1`` is exact).

    Args:
      period: steps per cycle, a number > 0 (int, float or ``fractions.Fraction``).
      ratio: fraction of each cycle spent ramping, in (0, 1].
      shape: ``"linear"``, ``"cosine"``, ``"logistic"`` or a callable ``p -> [0, 1]``.
      start: beta at the start of each cycle.
      end: beta held from ``tau = ratio`` to the end of each cycle.
      steepness: ``k`` of the logistic shape, in units of one ramp.

    Returns:
      An ``optax.Schedule``.

    Examples:
      >>> from kl_schedules import cyclical_schedule
      >>> schedule = cyclical_schedule(period=100, ratio=0.5)
      >>> [round(float(schedule(t)), 4) for t in (0, 25, 50, 99, 100, 125)]
      [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]

    References:
      Fu et al., "Cyclical Annealing Schedule: A Simple Approach to Mitigating KL
      Vanishing", NAACL 2019. https://arxiv.org/abs/1903.10145
    """
    fraction = _as_fraction(period)
    ratio = check_real("ratio", ratio, 0.0, 1.0, low_open=True)
    start = check_real("start", start)
    end = check_real("end", end)
    ramp = resolve_shape(shape, steepness)
    num, den = fraction.numerator, fraction.denominator
    period_float = num / den
    ramp_phases = num * ratio  # tau / R = phase / (num R): one division, exact at tau = R
    ramp_float = period_float * ratio

    def reduce_on_host(t: Any) -> Any:
        return t % num if isinstance(t, int) or t.dtype.kind in "iu" else np.mod(t, period_float)

    def schedule(step: Any) -> jax.Array:
        t, is_integer = _split_step(step, reduce_on_host)
        if is_integer:
            phase = jnp.remainder(t, jnp.asarray(num, t.dtype)).astype(jnp.int32)
            if den != 1:
                phase = (phase * den) % num  # = (t * den) mod num, no overflow
            progress = phase.astype(float_dtype()) / ramp_phases
        else:
            progress = jnp.mod(t, period_float) / ramp_float
        return start + (end - start) * ramp(jnp.minimum(progress, 1.0))

    return schedule


def schedule_values_from(schedule: Any, first: int, num_steps: int) -> np.ndarray:
    """``schedule(t)`` for ``t = first .. first + num_steps - 1``, in one vmapped call.

    Host adapters (the Keras callback, plots) use it to evaluate any ``optax.Schedule`` in
    blocks, so that they make no JAX call per step.
    """
    steps = jnp.arange(num_steps, dtype=jnp.int32) + jnp.int32(first)
    return np.asarray(jax.vmap(schedule)(steps))

"""Schedule factories: pure, jit-compatible maps ``step -> beta`` (``optax.Schedule``).

Each factory returns a :class:`Schedule`: a frozen, validated dataclass whose fields are
the schedule's settings. It is a plain callable for optax and JAX (jit, vmap, grad,
``optax.join_schedules``) and also a value: ``==``, ``hash``, ``repr``, pickling and
``to_dict()`` / :func:`from_dict` all come from its fields.

Steps, one rule per kind of input:

- a JAX integer or float array (traced or not), or a value JAX converts itself (such as a
  Keras variable under the JAX backend), is used as it is;
- a Python or NumPy integer of any size is first reduced exactly on the host, in Python or
  64-bit NumPy arithmetic, to an int32 step with the same beta (so ``10**12`` or a uint64
  step never wraps around);
- a Python or NumPy float must be finite (else ``ValueError``); a non-finite float in a
  JAX array, which may be traced and so cannot raise, gives NaN;
- anything else (a bool, a string, ``None``, a complex number) raises naming ``step``.
"""

from __future__ import annotations

import dataclasses
import fractions
import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from kl_schedules._backend import float_dtype
from kl_schedules._shapes import (
    DEFAULT_STEEPNESS,
    ShapeFn,
    check_shape,
    check_steepness,
    ramp_function,
)
from kl_schedules._validation import (
    INT32_MAX,
    ArgumentError,
    ArgumentTypeError,
    check_count,
    check_real,
)

Step = ArrayLike
#: A host step reduced by a schedule: a Python int, or a NumPy int64/uint64/float64 array.
HostStep = Any


def checked_step(step: Any) -> Any:
    """``step`` as a Python int, a NumPy int64/uint64 or finite float64 array, or a JAX
    integer or float array; anything else raises naming ``step`` (see the module notes)."""
    if isinstance(step, int) and not isinstance(step, bool):
        return step
    if hasattr(step, "__jax_array__"):  # e.g. a Keras variable under the JAX backend
        step = jnp.asarray(step)
    if isinstance(step, jax.Array):  # traced or not: checked by dtype only
        dtype = step.dtype
        if jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating):
            return step
    else:
        host = np.asarray(step)  # NumPy values, and array-likes such as CPU torch tensors
        dtype = host.dtype
        if dtype.kind in "iu":
            return host if dtype == np.uint64 else host.astype(np.int64)
        if dtype.kind == "f":
            if not np.isfinite(host).all():
                raise ArgumentError(f"step must be finite, got {step!r}", argument="step")
            return host.astype(np.float64)
    raise ArgumentTypeError(
        f"step must be an integer or a float, got {type(step).__name__} of dtype {dtype}: {step!r}",
        argument="step",
    )


def _clip(t: HostStep, low: int, high: int) -> HostStep:
    """``t`` clipped to ``[low, high]``: in Python for a Python int (of any size)."""
    return min(max(t, low), high) if isinstance(t, int) else np.clip(t, low, high)


def _interpolate(
    start: float,
    end: float,
    ramp: ShapeFn,
    progress: jax.Array,
    at_start: jax.Array,
    at_end: jax.Array,
) -> jax.Array:
    r""":math:`\beta_0 + (\beta_1 - \beta_0) f(p)`, exactly ``start`` / ``end`` at the ends.

    The ends are decided by integer (or exact float) comparisons, never by ``p`` itself:
    under ``jit`` XLA rewrites ``x / c`` as ``x * (1 / c)``, so ``p`` can be 0.99999994
    where it should be 1.
    """
    dtype = float_dtype()
    value = start + (end - start) * ramp(jnp.clip(progress, 0.0, 1.0))
    value = jnp.where(at_start, jnp.asarray(start, dtype), value)
    return jnp.where(at_end, jnp.asarray(end, dtype), value).astype(dtype)


@dataclasses.dataclass(frozen=True, repr=False)
class Schedule:
    """Base class of the schedules: ``schedule(step) -> beta``, and a frozen value.

    A subclass is a frozen dataclass whose fields are its settings (validated and
    normalised in ``__post_init__``); it sets ``kind`` (its tag in :meth:`to_dict`) and
    ``factory`` (the name of its public factory, used by ``repr``), and implements
    ``_beta`` on a JAX step and ``_equivalent_int`` / ``_equivalent_float`` on a host step.
    Equal schedules hash alike, so one passed as a static argument of ``jax.jit`` does not
    retrace; ``dataclasses.replace(schedule, start=0.1)`` builds a validated variant.
    """

    kind: ClassVar[str]
    factory: ClassVar[str]
    by_kind: ClassVar[dict[str, type[Schedule]]] = {}  # kind -> class, for from_dict

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in vars(cls):  # a concrete schedule, not a shared base
            Schedule.by_kind[cls.kind] = cls

    def _set(self, **values: Any) -> None:
        """Stores validated, normalised field values (the dataclass is frozen)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    # ---- evaluation ----------------------------------------------------------------------

    def __call__(self, step: Step) -> jax.Array:
        t = checked_step(step)
        if not isinstance(t, jax.Array):  # on the host: an equivalent step that fits int32
            if isinstance(t, int) or t.dtype.kind in "iu":
                t = jnp.asarray(np.asarray(self._equivalent_int(t)).astype(np.int32))
            else:
                t = jnp.asarray(self._equivalent_float(t), dtype=float_dtype())
        elif jnp.issubdtype(t.dtype, jnp.integer) and t.dtype.itemsize < 4:
            t = t.astype(jnp.int32)  # int8/16 and uint8/16: widen, no value changes
        if jnp.issubdtype(t.dtype, jnp.integer):
            return self._beta(t)
        t = t.astype(jnp.promote_types(t.dtype, float_dtype()))
        return jnp.where(jnp.isfinite(t), self._beta(t), jnp.nan).astype(float_dtype())

    def _beta(self, t: jax.Array) -> jax.Array:
        """beta at a JAX integer (int32 or wider) or float step."""
        raise NotImplementedError

    def _equivalent_int(self, t: HostStep) -> HostStep:
        """A step with the same beta that fits int32, for a Python int or int64/uint64 array."""
        raise NotImplementedError

    def _equivalent_float(self, t: np.ndarray) -> np.ndarray:
        """A float64 step with the same beta and a small magnitude, for a float64 array."""
        raise NotImplementedError

    # ---- a value ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        """The factory call that builds it: fields that differ from the defaults, and the
        shape (what a reader looks for first)."""
        args = [
            f"{field.name}={_repr_param(getattr(self, field.name))}"
            for field in dataclasses.fields(self)
            if field.name == "shape" or getattr(self, field.name) != field.default
        ]
        return f"{self.factory}({', '.join(args)})"

    def to_dict(self) -> dict[str, Any]:
        """The schedule as plain JSON data; :func:`kl_schedules.from_dict` rebuilds it.

        Raises:
          ValueError: the shape is a user callable, which has no JSON form.
        """
        data: dict[str, Any] = {"kind": self.kind}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if callable(value) and not isinstance(value, Schedule):
                raise ArgumentError(
                    f"{self!r} cannot be serialised: its {field.name} is a callable "
                    f"({value!r}); use one of the named shapes, or store the callable yourself",
                    argument=field.name,
                )
            data[field.name] = _json_param(value)
        return data


def _repr_param(value: Any) -> str:
    if isinstance(value, fractions.Fraction):
        return str(value.numerator) if value.denominator == 1 else repr(value)
    return repr(value)


def _json_param(value: Any) -> Any:
    if isinstance(value, Schedule):  # a wrapped schedule: nested JSON
        return value.to_dict()
    if isinstance(value, fractions.Fraction):
        return (
            value.numerator if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
        )
    return value


@dataclasses.dataclass(frozen=True, repr=False)
class ConstantSchedule(Schedule):
    r"""A constant beta: :math:`\beta(t) = v`. Built by :func:`constant_schedule`."""

    kind = "constant"
    factory = "constant_schedule"
    value: float = 1.0

    def __post_init__(self) -> None:
        self._set(value=check_real("value", self.value))

    def _beta(self, t: jax.Array) -> jax.Array:
        return jnp.full(t.shape, self.value, dtype=float_dtype())

    def _equivalent_int(self, t: HostStep) -> HostStep:
        return np.zeros(np.shape(t), dtype=np.int64)

    def _equivalent_float(self, t: np.ndarray) -> np.ndarray:
        return np.zeros_like(t)


def constant_schedule(value: float = 1.0) -> ConstantSchedule:
    r"""A constant beta: :math:`\beta(t) = v`.

    Args:
      value: the constant, a finite number.

    Returns:
      An ``optax.Schedule`` returning ``value`` for every step (broadcast to the step's
      shape); the step is checked like every schedule's.

    Examples:
      >>> from kl_schedules import constant_schedule
      >>> float(constant_schedule(0.5)(1234))
      0.5
    """
    return ConstantSchedule(value)


@dataclasses.dataclass(frozen=True, repr=False)
class MonotonicSchedule(Schedule):
    """A monotonic warm-up; built by :func:`monotonic_schedule`, which documents it."""

    kind = "monotonic"
    factory = "monotonic_schedule"
    total_steps: int
    shape: str | ShapeFn = "linear"
    start: float = 0.0
    end: float = 1.0
    delay: int = 0
    steepness: float = DEFAULT_STEEPNESS

    def __post_init__(self) -> None:
        total_steps = check_count("total_steps", self.total_steps)
        delay = check_count("delay", self.delay, minimum=0)
        if delay + total_steps > INT32_MAX:
            raise ArgumentError(
                f"delay + total_steps must be <= 2**31 - 1, got {delay} + {total_steps}",
                argument="total_steps",
            )
        self._set(
            total_steps=total_steps,
            shape=check_shape(self.shape),
            start=check_real("start", self.start),
            end=check_real("end", self.end),
            delay=delay,
            steepness=check_steepness(self.steepness),
        )

    def _equivalent_int(self, t: HostStep) -> HostStep:
        return _clip(t, self.delay, self.delay + self.total_steps)

    def _equivalent_float(self, t: np.ndarray) -> np.ndarray:
        return _clip(t, self.delay, self.delay + self.total_steps)  # type: ignore[no-any-return]

    def _beta(self, t: jax.Array) -> jax.Array:
        first, total = self.delay, self.total_steps
        if jnp.issubdtype(t.dtype, jnp.integer):
            elapsed = jnp.clip(t, first, first + total).astype(jnp.int32) - first  # no wrap
            progress = elapsed.astype(float_dtype()) / total
            at_start, at_end = elapsed <= 0, elapsed >= total
        else:
            progress = (t - first) / total
            at_start, at_end = t <= first, t >= first + total
        ramp = ramp_function(self.shape, self.steepness)
        return _interpolate(self.start, self.end, ramp, progress, at_start, at_end)


def monotonic_schedule(
    total_steps: int,
    shape: str | ShapeFn = "linear",
    start: float = 0.0,
    end: float = 1.0,
    delay: int = 0,
    steepness: float = DEFAULT_STEEPNESS,
) -> MonotonicSchedule:
    r"""A monotonic warm-up from ``start`` to ``end`` over ``total_steps`` after ``delay``.

    .. math::
        p(t) &= \mathrm{clip}((t - d) / T,\ 0,\ 1) \\
        \beta(t) &= \beta_0 + (\beta_1 - \beta_0)\, f(p(t))

    with :math:`T` = ``total_steps``, :math:`d` = ``delay``, :math:`f` the ramp ``shape``.
    beta is exactly ``start`` for :math:`t \le d` and exactly ``end`` for
    :math:`t \ge d + T`, under ``jit`` too. For an integer step, :math:`t` is first clamped
    to :math:`[d, d + T]` in its own dtype (no wrap-around for unsigned steps), so every
    integer step is exact.

    Args:
      total_steps: length of the ramp in steps, an integer >= 1.
      shape: ``"linear"``, ``"cosine"``, ``"logistic"`` (or the library's function of that
        name, which stands for it) or a callable ``p -> [0, 1]``.
      start: beta before and at the start of the ramp.
      end: beta at and after ``delay + total_steps``.
      delay: steps held at ``start`` before the ramp begins, an integer >= 0.
      steepness: ``k`` of the logistic shape, in units of the whole ramp (ignored by the
        other shapes), in [1e-30, 1e30].

    Returns:
      A :class:`Schedule` (an ``optax.Schedule``).

    Examples:
      >>> from kl_schedules import monotonic_schedule
      >>> schedule = monotonic_schedule(total_steps=100, shape="cosine", delay=10)
      >>> [round(float(schedule(t)), 4) for t in (0, 10, 60, 110, 10**12)]
      [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    return MonotonicSchedule(total_steps, shape, start, end, delay, steepness)


def _as_fraction(period: Any) -> fractions.Fraction:
    """``period`` as the exact ``num / den`` with ``num * den <= 2**31 - 1``, or raises.

    An int or a ``Fraction`` is taken exactly; a float must be exactly the float nearest to
    such a rational (``1000 / 3`` is, ``1e9 + 0.5`` is not): it is never rounded silently.
    """
    if isinstance(period, (bool, np.bool_, str, bytes)):
        raise ArgumentTypeError(
            f"period must be a number > 1, got {type(period).__name__}: {period!r}",
            argument="period",
        )
    if isinstance(period, fractions.Fraction):
        exact = period
    else:
        try:
            exact = fractions.Fraction(check_count("period", period, minimum=1))
        except ValueError:
            value = check_real("period", period, 1.0, low_open=True)
            max_den = max(1, math.isqrt(int(INT32_MAX / value)) if value < INT32_MAX else 1)
            exact = fractions.Fraction(value).limit_denominator(max_den)
            if float(exact) != value:
                raise ArgumentError(
                    f"period must be an integer or a ratio num/den with num * den <= 2**31 - 1 "
                    f"(for exact integer phase arithmetic), got {period!r}, which is not; "
                    f"pass an int, a fractions.Fraction or a float such as T / M",
                    argument="period",
                ) from None
    if exact <= 1:
        raise ArgumentError(
            f"period must be more than 1 step (a cycle of at most one step cannot ramp between "
            f"integer steps: a period of 1 or 1/k stays at start, others alias), got {period!r}",
            argument="period",
        )
    if exact.numerator * exact.denominator > INT32_MAX:
        raise ArgumentError(
            f"period must have num * den <= 2**31 - 1 as a fraction num/den, got {period!r}",
            argument="period",
        )
    return exact


@dataclasses.dataclass(frozen=True, repr=False)
class CyclicalSchedule(Schedule):
    """Cyclical annealing; built by :func:`cyclical_schedule`, which documents it."""

    kind = "cyclical"
    factory = "cyclical_schedule"
    period: float | fractions.Fraction  # stored as the exact Fraction
    ratio: float = 0.5
    shape: str | ShapeFn = "linear"
    start: float = 0.0
    end: float = 1.0
    steepness: float = DEFAULT_STEEPNESS
    hold_start: float = 0.0
    num_cycles: int | None = None

    def __post_init__(self) -> None:
        exact = _as_fraction(self.period)
        ratio = check_real("ratio", self.ratio, 0.0, 1.0, low_open=True)
        hold_start = check_real("hold_start", self.hold_start, 0.0, 1.0, high_open=True)
        if hold_start + ratio > 1.0:
            raise ArgumentError(
                f"hold_start + ratio must be <= 1, got {hold_start} + {ratio}",
                argument="hold_start",
            )
        num_cycles = self.num_cycles
        if num_cycles is not None:
            num_cycles = check_count("num_cycles", num_cycles)
            if math.ceil(num_cycles * exact) > INT32_MAX:
                raise ArgumentError(
                    f"num_cycles * period must be <= 2**31 - 1 steps, got {num_cycles} * "
                    f"{self.period}",
                    argument="num_cycles",
                )
        self._set(
            period=exact,
            ratio=ratio,
            shape=check_shape(self.shape),
            start=check_real("start", self.start),
            end=check_real("end", self.end),
            steepness=check_steepness(self.steepness),
            hold_start=hold_start,
            num_cycles=num_cycles,
        )

    @property
    def _num_den(self) -> tuple[int, int]:
        """The period as ``num / den``: ``num`` steps hold exactly ``den`` cycles."""
        period = fractions.Fraction(self.period)
        return period.numerator, period.denominator

    @property
    def _limit(self) -> int | None:
        """The first integer step after the last whole cycle (None: cycles for ever)."""
        return None if self.num_cycles is None else math.ceil(self.num_cycles * self.period)

    def _equivalent_int(self, t: HostStep) -> HostStep:
        num, limit = self._num_den[0], self._limit  # same phase, same after-the-end status
        return t % num if limit is None else np.where(t >= limit, limit, t % num)

    def _equivalent_float(self, t: np.ndarray) -> np.ndarray:
        period = float(self.period)
        limit = math.inf if self.num_cycles is None else self.num_cycles * period
        return np.where(t >= limit, limit, np.mod(t, period))

    def _beta(self, t: jax.Array) -> jax.Array:
        num, den = self._num_den
        period = num / den
        # phase = (t mod P) * den, an integer in [0, num): tau = phase / num.
        hold_phases, ramp_phases = self.hold_start * num, self.ratio * num
        lo, hi = math.floor(hold_phases), math.ceil(hold_phases + ramp_phases)
        limit = self._limit
        if jnp.issubdtype(t.dtype, jnp.integer):
            phase = jnp.remainder(t, jnp.asarray(num, t.dtype)).astype(jnp.int32)
            if den != 1:
                phase = (phase * den) % num  # = (t * den) mod num; (num - 1) * den < 2**31
            progress = (phase.astype(float_dtype()) - hold_phases) / ramp_phases
            at_start, at_end = phase <= lo, phase >= hi
            if limit is not None:
                at_end = at_end | (t >= limit)
        else:
            limit_float = math.inf if self.num_cycles is None else self.num_cycles * period
            into_cycle = jnp.mod(t, period)
            progress = (into_cycle - self.hold_start * period) / (self.ratio * period)
            at_start = into_cycle <= self.hold_start * period
            at_end = (into_cycle >= (self.hold_start + self.ratio) * period) | (t >= limit_float)
        ramp = ramp_function(self.shape, self.steepness)
        return _interpolate(self.start, self.end, ramp, progress, at_start, at_end)


def cyclical_schedule(
    period: float | fractions.Fraction,
    ratio: float = 0.5,
    shape: str | ShapeFn = "linear",
    start: float = 0.0,
    end: float = 1.0,
    steepness: float = DEFAULT_STEEPNESS,
    hold_start: float = 0.0,
    num_cycles: int | None = None,
) -> CyclicalSchedule:
    r"""Cyclical annealing (Fu et al., 2019): hold, ramp for a fraction ``ratio``, hold.

    .. math::
        \tau(t) &= (t \bmod P) / P \\
        p(t) &= \mathrm{clip}((\tau(t) - H) / R,\ 0,\ 1) \\
        \beta(t) &= \beta_1 \quad \text{if } C \ne \mathrm{None} \text{ and } t \ge C P \\
        \beta(t) &= \beta_0 + (\beta_1 - \beta_0)\, f(p(t)) \quad \text{otherwise}

    with :math:`P` = ``period``, :math:`R` = ``ratio``, :math:`H` = ``hold_start``,
    :math:`C` = ``num_cycles`` and :math:`f` the ramp ``shape``. Each cycle holds
    ``start`` for the fraction :math:`H`, ramps over the next :math:`R`, and holds ``end``
    exactly from :math:`\tau = H + R` to the end of the cycle (under ``jit`` too). With
    :math:`H + R = 1` there is no hold at ``end``: the last step of a cycle is at
    :math:`f((P - 1 - H P) / (R P))`. After :math:`C` whole cycles beta holds ``end`` for
    ever; by default the cycles repeat for ever.

    For ``M`` cycles over ``T`` steps pass ``period=T / M``. A float period is read as the
    exact rational ``num / den`` it is the nearest float to (``1000 / 3`` is ``1000/3``);
    one that is no such rational with :math:`num \cdot den < 2^{31}` raises instead of
    being rounded. An integer step is reduced as :math:`((t \bmod num) \cdot den) \bmod num`
    in integer arithmetic, so step ``2**31 - 1`` and uint32 steps are exact. A float step
    must be finite (an infinite step has no phase): a Python or NumPy one raises, one in a
    JAX array gives NaN.

    Args:
      period: steps per cycle, a number > 1 (int, float or ``fractions.Fraction``); Fu et
        al. use ``T / M`` for ``M`` cycles in ``T`` steps.
      ratio: fraction of each cycle spent ramping, in (0, 1].
      shape: ``"linear"``, ``"cosine"``, ``"logistic"`` (or the library's function of that
        name, which stands for it) or a callable ``p -> [0, 1]``.
      start: beta held at the start of each cycle.
      end: beta held from ``tau = hold_start + ratio`` to the end of each cycle.
      steepness: ``k`` of the logistic shape, in units of one ramp, in [1e-30, 1e30].
      hold_start: fraction of each cycle held at ``start`` before the ramp, in [0, 1),
        with ``hold_start + ratio <= 1`` (Optimus' zero phase; disent's ``p_low``).
      num_cycles: ``None`` (repeat for ever) or the number of whole cycles, after which
        beta holds ``end``; ``num_cycles * period`` must be <= 2**31 - 1.

    Returns:
      A :class:`Schedule` (an ``optax.Schedule``).

    Examples:
      >>> from kl_schedules import cyclical_schedule
      >>> schedule = cyclical_schedule(period=100, ratio=0.5)
      >>> [round(float(schedule(t)), 4) for t in (0, 25, 50, 99, 100, 125)]
      [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]
      >>> twice = cyclical_schedule(period=10, ratio=0.5, hold_start=0.2, num_cycles=2)
      >>> [round(float(twice(t)), 2) for t in (0, 2, 3, 5, 7, 10, 20, 10**9)]
      [0.0, 0.0, 0.2, 0.6, 1.0, 0.0, 1.0, 1.0]

    References:
      Fu et al., "Cyclical Annealing Schedule: A Simple Approach to Mitigating KL
      Vanishing", NAACL 2019. https://arxiv.org/abs/1903.10145
    """
    return CyclicalSchedule(period, ratio, shape, start, end, steepness, hold_start, num_cycles)


def from_dict(data: dict[str, Any]) -> Schedule:
    """Rebuilds a schedule from :meth:`Schedule.to_dict` (plain JSON data), validating it.

    Examples:
      >>> import json
      >>> from kl_schedules import cyclical_schedule, from_dict
      >>> schedule = cyclical_schedule(period=1000 / 3, ratio=0.5, shape="cosine")
      >>> text = json.dumps(schedule.to_dict())
      >>> from_dict(json.loads(text)) == schedule
      True
    """
    if not isinstance(data, dict):
        raise ArgumentTypeError(
            f"data must be a dict, got {type(data).__name__}: {data!r}", argument="data"
        )
    kind = data.get("kind")
    if kind not in Schedule.by_kind:
        raise ArgumentError(
            f"data['kind'] must be one of {list(Schedule.by_kind)}, got {kind!r}",
            argument="kind",
        )
    cls = Schedule.by_kind[kind]
    fields = {field.name: field for field in dataclasses.fields(cls)}
    params = {key: value for key, value in data.items() if key != "kind"}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ArgumentError(f"unknown keys for a {kind} schedule: {unknown}", argument=unknown[0])
    required = [
        name
        for name, field in fields.items()
        if field.default is dataclasses.MISSING and name not in params
    ]
    if required:
        raise ArgumentError(
            f"a schedule of kind {kind!r} needs keys {required}, not in {data!r}",
            argument=required[0],
        )
    if isinstance(params.get("period"), str):  # a Fraction, written as "num/den"
        try:
            params["period"] = fractions.Fraction(params["period"])
        except (ValueError, ZeroDivisionError):
            raise ArgumentError(
                f"period must be a number or 'num/den' with den != 0, got {data['period']!r}",
                argument="period",
            ) from None
    return cls(**params)


def schedule_values_from(schedule: Callable[[Any], Any], first: int, num_steps: int) -> np.ndarray:
    """``schedule(t)`` for ``t = first .. first + num_steps - 1``, in one vectorised call.

    Host adapters (the Keras callback, plots) use it to evaluate a schedule in blocks, so
    that they make no JAX call per step. The steps are built in 64-bit integers: our own
    schedules reduce them exactly on the host at any size; any other ``optax.Schedule``
    gets int32 steps and a step past ``2**31 - 1`` raises instead of wrapping around.
    """
    first = check_count("first", first, minimum=0, maximum=2**62)
    num_steps = check_count("num_steps", num_steps, maximum=2**30)
    steps = np.arange(first, first + num_steps, dtype=np.int64)
    if isinstance(schedule, Schedule):
        return np.asarray(schedule(steps))
    if steps[-1] > INT32_MAX:
        raise ArgumentError(
            f"{schedule!r} is not a kl_schedules schedule, so it is evaluated on int32 steps; "
            f"step {int(steps[-1])} is past 2**31 - 1",
            argument="num_steps",
        )
    return np.asarray(jax.vmap(schedule)(jnp.asarray(steps, dtype=jnp.int32)))

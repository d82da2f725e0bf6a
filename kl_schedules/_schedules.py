"""Schedule factories: pure, jit-compatible maps ``step -> beta`` (``optax.Schedule``).

Each factory returns a small immutable :class:`Schedule` object: a plain callable for optax
and JAX (jit, vmap, grad, ``optax.join_schedules``), and also a value, with a readable
``repr``, equality, a hash, pickling and ``to_dict()`` / :func:`from_dict` for configs.
"""

from __future__ import annotations

import fractions
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

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
    ArgumentTypeError,
    check_count,
    check_real,
)

Step = ArrayLike
F = TypeVar("F", bound=Callable[..., Any])
HostReduce = Callable[[Any], Any]


def _split_step(step: Any, reduce_int: HostReduce, reduce_float: HostReduce) -> tuple[Any, bool]:
    """Returns ``(step_array, is_integer)``.

    Concrete host values (Python or NumPy numbers and arrays) are first reduced exactly, in
    Python or 64-bit NumPy arithmetic, to a value with the same beta that fits int32 (or
    the float dtype), so a Python int such as ``10**12`` never overflows. JAX values
    (traced or not) are used as they are.
    """
    if isinstance(step, (bool, np.bool_)):
        raise ArgumentTypeError(f"step must be an integer or float, got bool {step!r}")
    if isinstance(step, int):
        return jnp.asarray(reduce_int(step), dtype=jnp.int32), True
    if isinstance(step, (float, np.number, np.ndarray)):
        host = np.asarray(step)
        if host.dtype.kind in "iu":
            wide = host if host.dtype == np.uint64 else host.astype(np.int64)
            return jnp.asarray(np.asarray(reduce_int(wide)).astype(np.int32)), True
        if host.dtype.kind == "f":
            return jnp.asarray(reduce_float(host.astype(np.float64)), dtype=float_dtype()), False
        raise ArgumentTypeError(f"step must be an integer or float, got dtype {host.dtype}")
    step = jnp.asarray(step)
    if jnp.issubdtype(step.dtype, jnp.integer):
        if step.dtype.itemsize < 4:  # int8/16 and uint8/16: widen, no value changes
            step = step.astype(jnp.int32)
        return step, True
    if jnp.issubdtype(step.dtype, jnp.floating):
        return step.astype(jnp.promote_types(step.dtype, float_dtype())), False
    raise ArgumentTypeError(f"step must be an integer or float, got dtype {step.dtype}")


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


class Schedule:
    """Base class of the schedules: ``schedule(step) -> beta``, and an immutable value.

    Subclasses set ``kind`` and ``_fields`` (the constructor's parameters, in order) and
    implement ``__call__``. Two schedules are equal when they are of the same kind with
    equal parameters; equal schedules hash alike, so one passed as a static argument of
    ``jax.jit`` does not retrace.
    """

    kind: ClassVar[str]
    _fields: ClassVar[tuple[str, ...]]
    # the public function that builds it, and documents and holds its defaults
    _factory: ClassVar[Callable[..., Schedule]]
    _kinds: ClassVar[dict[str, type[Schedule]]] = {}  # kind -> class, for from_dict

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Schedule._kinds[cls.kind] = cls

    def __call__(self, step: Step) -> jax.Array:
        raise NotImplementedError

    def _params(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; build a new schedule instead")

    def _init(self, **params: Any) -> None:
        for name, value in params.items():
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._params() == other._params()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._params()))

    @classmethod
    def _factory_parameters(cls) -> Mapping[str, inspect.Parameter]:
        """The public factory's parameters: the one place its defaults live."""
        return inspect.signature(cls._factory).parameters

    def __repr__(self) -> str:
        defaults = {
            name: parameter.default
            for name, parameter in self._factory_parameters().items()
            if parameter.default is not inspect.Parameter.empty and name != "shape"
        }
        args = [
            f"{name}={_repr_param(value)}"
            for name, value in zip(self._fields, self._params(), strict=True)
            if name not in defaults or defaults[name] != value
        ]
        return f"{self._factory.__name__}({', '.join(args)})"

    def to_dict(self) -> dict[str, Any]:
        """The schedule as plain JSON data; :func:`kl_schedules.from_dict` rebuilds it.

        Raises:
          ValueError: the shape is a user callable, which has no JSON form.
        """
        data: dict[str, Any] = {"kind": self.kind}
        for name, value in zip(self._fields, self._params(), strict=True):
            if callable(value) and not isinstance(value, Schedule):
                raise ValueError(
                    f"{self!r} cannot be serialised: its {name} is a callable ({value!r}); "
                    f"use one of the named shapes, or store the callable yourself"
                )
            data[name] = _json_param(value)
        return data


def builds(cls: type[Schedule]) -> Callable[[F], F]:
    """Marks a function as the public factory of ``cls`` (its repr, defaults, from_dict)."""

    def register(factory: F) -> F:
        cls._factory = staticmethod(factory)
        return factory

    return register


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


class ConstantSchedule(Schedule):
    r"""A constant beta: :math:`\beta(t) = v`. Built by :func:`constant_schedule`."""

    kind = "constant"
    _fields = ("value",)
    value: float

    def __init__(self, *, value: float) -> None:
        self._init(value=check_real("value", value))

    def __call__(self, step: Step) -> jax.Array:
        return jnp.full(jnp.shape(step), self.value, dtype=float_dtype())


@builds(ConstantSchedule)
def constant_schedule(value: float = 1.0) -> ConstantSchedule:
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
    return ConstantSchedule(value=value)


class MonotonicSchedule(Schedule):
    """A monotonic warm-up; built by :func:`monotonic_schedule`, which documents it."""

    kind = "monotonic"
    _fields = ("total_steps", "shape", "start", "end", "delay", "steepness")
    total_steps: int
    shape: str | ShapeFn
    start: float
    end: float
    delay: int
    steepness: float

    def __init__(
        self,
        *,
        total_steps: int,
        shape: str | ShapeFn,
        start: float,
        end: float,
        delay: int,
        steepness: float,
    ) -> None:
        total_steps = check_count("total_steps", total_steps)
        delay = check_count("delay", delay, minimum=0)
        if delay + total_steps > INT32_MAX:
            raise ValueError(
                f"delay + total_steps must be <= 2**31 - 1, got {delay} + {total_steps}"
            )
        self._init(
            total_steps=total_steps,
            shape=check_shape(shape),
            start=check_real("start", start),
            end=check_real("end", end),
            delay=delay,
            steepness=check_steepness(steepness),
        )

    def __call__(self, step: Step) -> jax.Array:
        first, total = self.delay, self.total_steps
        last = first + total

        def clamp_on_host(t: Any) -> Any:
            return min(max(t, first), last) if isinstance(t, int) else np.clip(t, first, last)

        t, is_integer = _split_step(step, clamp_on_host, clamp_on_host)
        if is_integer:
            elapsed = jnp.clip(t, first, last).astype(jnp.int32) - first  # no unsigned wrap
            progress = elapsed.astype(float_dtype()) / total
            at_start, at_end = elapsed <= 0, elapsed >= total
        else:
            progress = (t - first) / total
            at_start, at_end = t <= first, t >= last
        ramp = ramp_function(self.shape, self.steepness)
        return _interpolate(self.start, self.end, ramp, progress, at_start, at_end)


@builds(MonotonicSchedule)
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
        other shapes).

    Returns:
      A :class:`Schedule` (an ``optax.Schedule``).

    Examples:
      >>> from kl_schedules import monotonic_schedule
      >>> schedule = monotonic_schedule(total_steps=100, shape="cosine", delay=10)
      >>> [round(float(schedule(t)), 4) for t in (0, 10, 60, 110, 10**12)]
      [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    return MonotonicSchedule(
        total_steps=total_steps, shape=shape, start=start, end=end, delay=delay, steepness=steepness
    )


def _as_fraction(period: Any) -> fractions.Fraction:
    """``period`` as the exact ``num / den`` with ``num * den <= 2**31 - 1``, or raises.

    An int or a ``Fraction`` is taken exactly; a float must be exactly the float nearest to
    such a rational (``1000 / 3`` is, ``1e9 + 0.5`` is not): it is never rounded silently.
    """
    if isinstance(period, (bool, np.bool_, str, bytes)):
        raise ArgumentTypeError(
            f"period must be a number > 1, got {type(period).__name__}: {period!r}"
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
                raise ValueError(
                    f"period must be an integer or a ratio num/den with num * den <= 2**31 - 1 "
                    f"(for exact integer phase arithmetic), got {period!r}, which is not; "
                    f"pass an int, a fractions.Fraction or a float such as T / M"
                ) from None
    if exact <= 1:
        raise ValueError(
            f"period must be more than 1 step (a cycle of at most one step cannot ramp between "
            f"integer steps: a period of 1 or 1/k stays at start, others alias), got {period!r}"
        )
    if exact.numerator * exact.denominator > INT32_MAX:
        raise ValueError(
            f"period must have num * den <= 2**31 - 1 as a fraction num/den, got {period!r}"
        )
    return exact


class CyclicalSchedule(Schedule):
    """Cyclical annealing; built by :func:`cyclical_schedule`, which documents it."""

    kind = "cyclical"
    _fields = (
        "period",
        "ratio",
        "shape",
        "start",
        "end",
        "steepness",
        "hold_start",
        "num_cycles",
    )
    period: fractions.Fraction
    ratio: float
    shape: str | ShapeFn
    start: float
    end: float
    steepness: float
    hold_start: float
    num_cycles: int | None

    def __init__(
        self,
        *,
        period: float | fractions.Fraction,
        ratio: float,
        shape: str | ShapeFn,
        start: float,
        end: float,
        steepness: float,
        hold_start: float,
        num_cycles: int | None,
    ) -> None:
        exact = _as_fraction(period)
        ratio = check_real("ratio", ratio, 0.0, 1.0, low_open=True)
        hold_start = check_real("hold_start", hold_start, 0.0, 1.0, high_open=True)
        if hold_start + ratio > 1.0:
            raise ValueError(f"hold_start + ratio must be <= 1, got {hold_start} + {ratio}")
        if num_cycles is not None:
            num_cycles = check_count("num_cycles", num_cycles)
            if math.ceil(num_cycles * exact) > INT32_MAX:
                raise ValueError(
                    f"num_cycles * period must be <= 2**31 - 1 steps, got {num_cycles} * {period}"
                )
        self._init(
            period=exact,
            ratio=ratio,
            shape=check_shape(shape),
            start=check_real("start", start),
            end=check_real("end", end),
            steepness=check_steepness(steepness),
            hold_start=hold_start,
            num_cycles=num_cycles,
        )

    def __call__(self, step: Step) -> jax.Array:
        num, den = self.period.numerator, self.period.denominator
        period = num / den
        # phase = (t mod P) * den, an integer in [0, num): tau = phase / num.
        hold_phases, ramp_phases = self.hold_start * num, self.ratio * num
        lo, hi = math.floor(hold_phases), math.ceil(hold_phases + ramp_phases)
        # First step after the last whole cycle (None: cycles for ever), and in float steps.
        limit = None if self.num_cycles is None else math.ceil(self.num_cycles * self.period)
        limit_float = math.inf if self.num_cycles is None else self.num_cycles * period

        def reduce_int(t: Any) -> Any:  # same phase and same after-the-last-cycle status
            if isinstance(t, int):
                return limit if limit is not None and t >= limit else t % num
            return t % num if limit is None else np.where(t >= limit, limit, t % num)

        def reduce_float(t: Any) -> Any:
            return np.where(t >= limit_float, limit_float, np.mod(t, period))

        t, is_integer = _split_step(step, reduce_int, reduce_float)
        if is_integer:
            phase = jnp.remainder(t, jnp.asarray(num, t.dtype)).astype(jnp.int32)
            if den != 1:
                phase = (phase * den) % num  # = (t * den) mod num; (num - 1) * den < 2**31
            progress = (phase.astype(float_dtype()) - hold_phases) / ramp_phases
            at_start, at_end = phase <= lo, phase >= hi
            if limit is not None:
                at_end = at_end | (t >= limit)
        else:
            into_cycle = jnp.mod(t, period)
            progress = (into_cycle - self.hold_start * period) / (self.ratio * period)
            at_start = into_cycle <= self.hold_start * period
            at_end = (into_cycle >= (self.hold_start + self.ratio) * period) | (t >= limit_float)
        ramp = ramp_function(self.shape, self.steepness)
        return _interpolate(self.start, self.end, ramp, progress, at_start, at_end)


@builds(CyclicalSchedule)
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
    in integer arithmetic, so step ``2**31 - 1`` and uint32 steps are exact.

    Args:
      period: steps per cycle, a number > 1 (int, float or ``fractions.Fraction``); Fu et
        al. use ``T / M`` for ``M`` cycles in ``T`` steps.
      ratio: fraction of each cycle spent ramping, in (0, 1].
      shape: ``"linear"``, ``"cosine"``, ``"logistic"`` (or the library's function of that
        name, which stands for it) or a callable ``p -> [0, 1]``.
      start: beta held at the start of each cycle.
      end: beta held from ``tau = hold_start + ratio`` to the end of each cycle.
      steepness: ``k`` of the logistic shape, in units of one ramp.
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
    return CyclicalSchedule(
        period=period,
        ratio=ratio,
        shape=shape,
        start=start,
        end=end,
        steepness=steepness,
        hold_start=hold_start,
        num_cycles=num_cycles,
    )


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
        raise ArgumentTypeError(f"data must be a dict, got {type(data).__name__}: {data!r}")
    kind = data.get("kind")
    if kind not in Schedule._kinds:
        raise ValueError(f"data['kind'] must be one of {list(Schedule._kinds)}, got {kind!r}")
    cls = Schedule._kinds[kind]
    params = {k: v for k, v in data.items() if k != "kind"}
    unknown = set(params) - set(cls._fields)
    if unknown:
        raise ValueError(f"unknown keys for a {kind} schedule: {sorted(unknown)}")
    if isinstance(params.get("period"), str):
        try:
            params["period"] = fractions.Fraction(params["period"])
        except ValueError:
            raise ValueError(
                f"period must be a number or 'num/den', got {data['period']!r}"
            ) from None
    required = [
        name
        for name, parameter in cls._factory_parameters().items()
        if parameter.default is inspect.Parameter.empty and name not in params
    ]
    if required:
        raise ValueError(f"a schedule of kind {kind!r} needs keys {required}, not in {data!r}")
    return cls._factory(**params)


def schedule_values_from(schedule: Any, first: int, num_steps: int) -> np.ndarray:
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
        raise ValueError(
            f"{schedule!r} is not a kl_schedules schedule, so it is evaluated on int32 steps; "
            f"step {int(steps[-1])} is past 2**31 - 1"
        )
    return np.asarray(jax.vmap(schedule)(jnp.asarray(steps, dtype=jnp.int32)))

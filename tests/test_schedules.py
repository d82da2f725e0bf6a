"""kl_schedules' schedules (constant, monotonic, cyclical, epochs_on_steps, steps_on_epochs)
against closed-form float64 and exact rational references: shapes, dtypes, transforms, huge
steps, exact end points under jit, schedules as values (to_dict/from_dict, pickle, repr),
the epoch/step converters and describe()."""

from __future__ import annotations

import dataclasses
import fractions
import inspect
import json
import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import kl_schedules
from kl_schedules import (
    Annealer,
    ConstantSchedule,
    CyclicalSchedule,
    EpochsOnSteps,
    MonotonicSchedule,
    StepsOnEpochs,
    annealing,
    constant_schedule,
    cyclical_schedule,
    describe,
    epochs_on_steps,
    from_dict,
    monotonic_schedule,
    steps_on_epochs,
)
from kl_schedules._schedules import schedule_values_from
from kl_schedules.control import geco, pi_controller
from tests.reference import (
    SHAPES,
    annealers,
    np_monotonic,
    np_shape,
    py_cyclical,
    recorded_betas,
    sigmoid,
)

INT_DTYPES = [jnp.int8, jnp.int16, jnp.int32, jnp.uint8, jnp.uint16, jnp.uint32]
ATOL = 2e-6  # float32 rounding of a value in [0, 1]


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_hit_zero_and_one_exactly(shape):
    schedule = monotonic_schedule(10, shape)
    assert float(schedule(0)) == 0.0
    assert float(schedule(10)) == 1.0
    cyc = cyclical_schedule(10, ratio=0.5, shape=shape)
    assert float(cyc(0)) == 0.0
    assert float(cyc(5)) == 1.0


@pytest.mark.parametrize("shape", SHAPES)
def test_monotonic_matches_closed_form(shape):
    steps = np.arange(0, 160)
    schedule = monotonic_schedule(100, shape, start=0.1, end=0.9, delay=30)
    got = np.asarray(jax.vmap(schedule)(jnp.asarray(steps)))
    np.testing.assert_allclose(got, np_monotonic(steps, 100, shape, 0.1, 0.9, 30), atol=ATOL)


def test_logistic_closed_form_values():
    # (sig(12 (p - 1/2)) - sig(-6)) / (sig(6) - sig(-6)) at p = 1/4: computed by hand.
    expected = (sigmoid(-3.0) - sigmoid(-6.0)) / (sigmoid(6.0) - sigmoid(-6.0))
    assert float(monotonic_schedule(4, "logistic")(1)) == pytest.approx(expected, abs=ATOL)
    assert float(monotonic_schedule(4, "logistic")(2)) == pytest.approx(0.5, abs=ATOL)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("period", [100, 1000 / 3, 12.5, fractions.Fraction(7, 2)])
def test_cyclical_matches_exact_reference(shape, period):
    frac = fractions.Fraction(period).limit_denominator(1000)
    schedule = cyclical_schedule(period, ratio=0.6, shape=shape, start=0.2, end=1.0)
    steps = np.arange(0, 2000)
    got = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))
    expected = [
        py_cyclical(int(t), frac.numerator, frac.denominator, 0.6, shape, 0.2, 1.0) for t in steps
    ]
    np.testing.assert_allclose(got, expected, atol=ATOL)


def test_cyclical_reaches_end_exactly_at_ratio_and_holds():
    schedule = cyclical_schedule(period=10, ratio=0.5)
    assert [float(schedule(t)) for t in range(11)] == pytest.approx(
        [0, 0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1, 1, 0], abs=ATOL
    )


def test_fu_et_al_m4_r05_over_T():
    # M = 4 cycles over T = 1000 steps: period 250, ramp 125 steps, then hold at 1.
    schedule = cyclical_schedule(period=1000 / 4, ratio=0.5)
    np.testing.assert_allclose(
        [float(schedule(t)) for t in (0, 62, 125, 249, 250, 375, 999)],
        [0, 62 / 125, 1, 1, 0, 1, 1],
        atol=ATOL,
    )


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("kind", ["monotonic", "cyclical"])
def test_every_integer_dtype(dtype, kind):
    info = jnp.iinfo(dtype)
    steps = np.array([0, 1, 7, 50, 99, 100, 101, int(info.max)], dtype=np.int64)
    steps = steps[steps <= info.max]
    if kind == "monotonic":
        schedule = monotonic_schedule(100, "cosine", delay=3)
        expected = np_monotonic(steps, 100, "cosine", delay=3)
    else:
        schedule = cyclical_schedule(40, 0.5, "cosine")
        expected = [py_cyclical(int(t), 40, 1, 0.5, "cosine") for t in steps]
    for t, e in zip(steps, expected, strict=True):
        assert float(schedule(jnp.asarray(t, dtype))) == pytest.approx(e, abs=ATOL), (dtype, t)
        assert float(jax.jit(schedule)(jnp.asarray(t, dtype))) == pytest.approx(e, abs=ATOL)


def test_uint32_step_near_wraparound_does_not_wrap():
    # flax.nnx.Optimizer.step is uint32: t - delay must not wrap for t < delay.
    schedule = monotonic_schedule(100, delay=50)
    assert float(jax.jit(schedule)(jnp.uint32(10))) == 0.0
    assert float(jax.jit(schedule)(jnp.uint32(2**32 - 1))) == 1.0
    cyc = cyclical_schedule(1000 / 3)
    expected = py_cyclical(2**32 - 1, 1000, 3, 0.5)
    assert float(jax.jit(cyc)(jnp.uint32(2**32 - 1))) == pytest.approx(expected, abs=ATOL)


@pytest.mark.parametrize("shape", SHAPES)
def test_huge_steps_exact(shape):
    cyc = cyclical_schedule(1000 / 3, ratio=0.5, shape=shape)
    mono = monotonic_schedule(10**6, shape, delay=7)
    big = 2**31 - 1
    expected = py_cyclical(big, 1000, 3, 0.5, shape)
    assert float(jax.jit(cyc)(jnp.int32(big))) == pytest.approx(expected, abs=ATOL)
    assert float(jax.jit(mono)(jnp.int32(big))) == 1.0
    for t in (10**9, 10**12 + 17, 10**12):
        got = float(cyc(t))  # eager Python int, beyond int32
        assert np.isfinite(got)
        assert got == pytest.approx(py_cyclical(t, 1000, 3, 0.5, shape), abs=ATOL)
        assert float(mono(t)) == 1.0
        assert float(cyc(np.int64(t))) == pytest.approx(got, abs=ATOL)


def test_float_steps_match_closed_form():
    mono = monotonic_schedule(10, "linear", delay=2)
    assert float(mono(4.5)) == pytest.approx(0.25, abs=ATOL)
    cyc = cyclical_schedule(10, ratio=1.0)
    assert float(cyc(12.5)) == pytest.approx(0.25, abs=ATOL)
    assert float(cyc(np.float32(12.5))) == pytest.approx(0.25, abs=ATOL)
    assert float(cyc(jnp.bfloat16(12.5))) == pytest.approx(0.25, abs=ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_grad_wrt_float_step_is_finite(shape):
    for schedule in (monotonic_schedule(100, shape), cyclical_schedule(37.5, 0.5, shape)):
        grads = jax.vmap(jax.grad(schedule))(jnp.linspace(0.0, 200.0, 101))
        assert bool(jnp.all(jnp.isfinite(grads)))
    # inside the linear ramp, d beta / d t = (end - start) / T
    assert float(jax.grad(monotonic_schedule(100, start=1, end=3))(50.0)) == pytest.approx(0.02)


def test_output_dtype_float32_and_shape():
    schedule = cyclical_schedule(10)
    assert schedule(3).dtype == jnp.float32
    assert schedule(jnp.arange(6).reshape(2, 3)).shape == (2, 3)
    assert constant_schedule(0.3)(jnp.arange(4)).shape == (4,)
    assert constant_schedule(0.3)(5).dtype == jnp.float32


def test_scan_and_jit_and_vmap_agree():
    schedule = cyclical_schedule(25, 0.5, "cosine")

    def body(carry, t):
        return carry, schedule(t)

    _, scanned = jax.lax.scan(body, None, jnp.arange(100))
    vmapped = jax.vmap(schedule)(jnp.arange(100))
    eager = np.array([float(schedule(t)) for t in range(100)])
    np.testing.assert_allclose(np.asarray(scanned), eager, atol=ATOL)
    np.testing.assert_allclose(np.asarray(vmapped), eager, atol=ATOL)


def test_composes_with_optax_join_schedules():
    delay_then_cycle = optax.join_schedules(
        [constant_schedule(0.0), cyclical_schedule(period=10, ratio=0.5)], boundaries=[20]
    )
    got = [float(delay_then_cycle(t)) for t in range(18, 32)]
    expected = [0, 0, 0, 0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1, 1, 0, 0.2]
    np.testing.assert_allclose(got, expected, atol=ATOL)
    jitted = jax.jit(delay_then_cycle)
    assert float(jitted(jnp.int32(23))) == pytest.approx(0.6, abs=ATOL)


def test_is_accepted_by_optax_as_learning_rate_schedule():
    # Any optax.Schedule works where optax takes one, e.g. scale_by_schedule.
    tx = optax.scale_by_schedule(cyclical_schedule(4))
    params = jnp.ones(())
    state = tx.init(params)
    updates, state = tx.update(jnp.ones(()), state)
    assert float(updates) == 0.0  # first update uses schedule(0)


def test_user_callable_shape():
    schedule = monotonic_schedule(10, shape=lambda p: p**2)
    assert float(schedule(5)) == pytest.approx(0.25, abs=ATOL)


def test_x64_returns_float64():
    jax.config.update("jax_enable_x64", True)
    try:
        schedule = cyclical_schedule(1000 / 3, shape="cosine")
        out = schedule(123)
        assert out.dtype == jnp.float64
        assert float(out) == pytest.approx(py_cyclical(123, 1000, 3, 0.5, "cosine"), abs=1e-12)
        big = schedule(jnp.int64(10**15 + 1))
        assert float(big) == pytest.approx(py_cyclical(10**15 + 1, 1000, 3, 0.5, "cosine"))
    finally:
        jax.config.update("jax_enable_x64", False)


# ---- properties -----------------------------------------------------------------------

shape_st = st.sampled_from(SHAPES)
level_st = st.floats(-10, 10, allow_nan=False)
step_st = st.integers(0, 2**31 - 1)


@given(shape_st, level_st, level_st, st.integers(1, 10**6), st.integers(0, 10**6), step_st)
def test_monotonic_within_bounds_and_matches_reference(shape, start, end, total, delay, t):
    schedule = monotonic_schedule(total, shape, start, end, delay)
    got = float(schedule(t))
    lo, hi = min(start, end), max(start, end)
    tol = ATOL * (1 + abs(start) + abs(end))
    assert lo - tol <= got <= hi + tol
    assert got == pytest.approx(float(np_monotonic(t, total, shape, start, end, delay)), abs=tol)


@given(shape_st, st.integers(1, 10**5), st.integers(0, 10**5))
def test_monotonic_is_monotone(shape, total, t):
    schedule = monotonic_schedule(total, shape)
    assert float(schedule(t + 1)) >= float(schedule(t))


@given(
    shape_st,
    st.integers(1, 5000),
    st.integers(1, 7),
    st.floats(0.05, 1.0),
    st.integers(0, 10**6),
)
def test_cyclical_periodic_bounded_and_monotone_within_ramp(shape, total, cycles, ratio, t):
    assume(total > cycles)  # a period must exceed 1 step
    period = total / cycles
    schedule = cyclical_schedule(period, ratio, shape)
    frac = fractions.Fraction(total, cycles)
    num = frac.numerator
    value = float(schedule(t))
    assert -ATOL <= value <= 1 + ATOL
    # periodic: one full rational period later (num steps) the value repeats exactly
    assert float(schedule(t + num)) == value
    # non-decreasing from t to t + 1 unless a new cycle starts in (t, t + 1]
    den = frac.denominator
    if (t + 1) * den // num == t * den // num:
        assert float(schedule(t + 1)) >= value - ATOL


@pytest.mark.slow
@given(shape_st, st.integers(2, 1000), st.floats(0.05, 1.0), st.lists(step_st, max_size=16))
def test_jit_equals_eager_and_vmap_equals_loop(shape, period, ratio, steps):
    schedule = cyclical_schedule(period, ratio, shape)
    eager = [float(schedule(t)) for t in steps]
    jitted = jax.jit(schedule)
    assert [float(jitted(jnp.int32(t))) for t in steps] == pytest.approx(eager, abs=ATOL)
    if steps:
        batched = jax.vmap(schedule)(jnp.asarray(steps, dtype=jnp.int32))
        np.testing.assert_allclose(np.asarray(batched), eager, atol=ATOL)


# ---- one rule per kind of step, for every schedule (issue 18, item 7) --------------------------

EVERY_SCHEDULE = [
    constant_schedule(0.3),
    monotonic_schedule(10),
    cyclical_schedule(10),
    cyclical_schedule(10, num_cycles=2),
    epochs_on_steps(monotonic_schedule(4), steps_per_epoch=10),
    epochs_on_steps(cyclical_schedule(4), steps_per_epoch=10, hold=False),
    steps_on_epochs(monotonic_schedule(100), steps_per_epoch=10),
]


@pytest.mark.parametrize("schedule", EVERY_SCHEDULE, ids=repr)
@pytest.mark.parametrize("step", [None, "5", True, np.bool_(True), jnp.asarray(True), 1j])
def test_every_schedule_refuses_what_is_not_a_step(schedule, step):
    with pytest.raises(TypeError, match="step must be an integer or a float") as raised:
        schedule(step)
    assert raised.value.argument == "step"


@pytest.mark.parametrize("schedule", EVERY_SCHEDULE, ids=repr)
@pytest.mark.parametrize(
    "step", [-np.inf, np.inf, np.nan, np.float32(np.inf), np.array([1.0, -np.inf])]
)
def test_a_host_step_must_be_finite(schedule, step):
    with pytest.raises(ValueError, match="step must be finite") as raised:
        schedule(float(step) if isinstance(step, float) else step)
    assert raised.value.argument == "step"


@pytest.mark.parametrize("schedule", EVERY_SCHEDULE, ids=repr)
def test_a_non_finite_jax_step_gives_nan_without_a_warning(schedule):
    steps = jnp.asarray([-jnp.inf, jnp.inf, jnp.nan, 3.0])
    for values in (schedule(steps), jax.jit(schedule)(steps), jax.vmap(schedule)(steps)):
        values = np.asarray(values)
        assert np.isnan(values[:3]).all(), values
        assert np.isfinite(values[3])


def test_the_reported_non_finite_cases():
    with pytest.raises(ValueError, match="finite"):
        cyclical_schedule(10)(-np.inf)
    with pytest.raises(ValueError, match="finite"):
        cyclical_schedule(10)(np.inf)  # the same rule for both ends
    with pytest.raises(ValueError, match="finite"):
        monotonic_schedule(10)(float("nan"))


@pytest.mark.parametrize("steepness", [1e-300, 0.0, 1e-31, 1e31, 1e300, float("inf")])
def test_steepness_outside_float32_range_is_refused(steepness):
    for make in (monotonic_schedule, lambda *a, **k: cyclical_schedule(10, **k)):
        with pytest.raises(ValueError, match=r"steepness must be a finite number in \[1e-30"):
            make(10, "logistic", steepness=steepness) if make is monotonic_schedule else make(
                steepness=steepness, shape="logistic"
            )


@pytest.mark.parametrize("steepness", [1e-30, 1e-6, 1e6, 1e30])
def test_steepness_at_the_range_ends_gives_finite_monotonic_values(steepness):
    schedule = monotonic_schedule(1000, "logistic", steepness=steepness)
    values = np.asarray(schedule(np.arange(1001)))
    assert np.isfinite(values).all()
    assert values[0] == 0.0 and values[-1] == 1.0 and (np.diff(values) >= 0).all()
    if steepness <= 1e-6:  # linear to float32 precision
        np.testing.assert_allclose(values, np.arange(1001) / 1000, atol=1e-6)


def test_from_dict_names_a_period_with_a_zero_denominator():
    with pytest.raises(ValueError, match="period") as raised:
        from_dict({"kind": "cyclical", "period": "1/0"})
    assert raised.value.argument == "period"
    assert not isinstance(raised.value, ZeroDivisionError)


# ---- the config dataclasses -----------------------------------------------------------------


@pytest.mark.parametrize(
    "factory,cls",
    [
        (constant_schedule, ConstantSchedule),
        (monotonic_schedule, MonotonicSchedule),
        (cyclical_schedule, CyclicalSchedule),
        (epochs_on_steps, EpochsOnSteps),
        (steps_on_epochs, StepsOnEpochs),
    ],
)
def test_each_factory_takes_exactly_its_dataclass_fields(factory, cls):
    fields = dataclasses.fields(cls)
    parameters = list(inspect.signature(factory).parameters.values())
    assert [p.name for p in parameters] == [f.name for f in fields]
    for parameter, field in zip(parameters, fields, strict=True):
        missing = dataclasses.MISSING
        assert parameter.default == (
            inspect.Parameter.empty if field.default is missing else field.default
        )


def test_replace_builds_a_validated_variant():
    schedule = cyclical_schedule(1000 / 3, ratio=0.5)
    variant = dataclasses.replace(schedule, ratio=0.25)
    assert variant == cyclical_schedule(1000 / 3, ratio=0.25) and variant.period == schedule.period
    with pytest.raises(ValueError, match="ratio") as raised:
        dataclasses.replace(schedule, ratio=1.5)
    assert raised.value.argument == "ratio"


def test_a_value_jax_converts_itself_is_a_jax_step():
    class Counter:  # like a Keras variable under the JAX backend
        def __jax_array__(self):
            return jnp.asarray(7, dtype=jnp.int32)

    for schedule in EVERY_SCHEDULE:
        assert float(schedule(Counter())) == float(schedule(7))


# ---- cyclical: hold_start and num_cycles -------------------------------------------------


def reference_cyclical(t, period, ratio, hold, cycles, shape, start=0.0, end=1.0):
    """Exact rational arithmetic, written from the formula, sharing nothing with the library."""
    period = fractions.Fraction(period)
    if cycles is not None and t >= cycles * period:
        return end
    tau = (fractions.Fraction(t) % period) / period
    hold, ratio = fractions.Fraction(hold), fractions.Fraction(ratio)
    if tau <= hold:
        return start
    if tau >= hold + ratio:
        return end
    return start + (end - start) * float(np_shape(shape, np.array(float((tau - hold) / ratio))))


@pytest.mark.slow
@given(
    period=st.sampled_from([4, 10, 12.5, 1000 / 3, fractions.Fraction(7, 2), 64]),
    ratio=st.sampled_from([0.25, 0.5, 0.75]),
    hold=st.sampled_from([0.0, 0.125, 0.25]),
    cycles=st.sampled_from([None, 1, 3]),
    shape=st.sampled_from(["linear", "cosine", "logistic"]),
)
def test_cyclical_hold_and_cycles_match_the_exact_reference(period, ratio, hold, cycles, shape):
    schedule = cyclical_schedule(period, ratio, shape, hold_start=hold, num_cycles=cycles)
    steps = np.arange(0, 1200)
    got = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))
    period_exact = fractions.Fraction(period).limit_denominator(1000)
    want = [reference_cyclical(int(t), period_exact, ratio, hold, cycles, shape) for t in steps]
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_cyclical_edge_cases():
    # hold + ratio = 1: no hold at end; the ramp's last step is below end
    sawtooth = cyclical_schedule(10, ratio=0.8, hold_start=0.2)
    assert [round(float(sawtooth(t)), 4) for t in range(11)] == [
        0.0, 0.0, 0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 0.0,
    ]  # fmt: skip
    # one cycle = a delayed monotonic warm-up
    once = cyclical_schedule(100, ratio=0.5, hold_start=0.2, num_cycles=1)
    warmup = monotonic_schedule(50, delay=20)
    steps = jnp.arange(300)
    np.testing.assert_allclose(jax.vmap(once)(steps), jax.vmap(warmup)(steps), atol=1e-7)
    # exact at the int32 limit and for uint32 steps
    for step in (2**31 - 1, jnp.int32(2**31 - 1), jnp.uint32(2**32 - 1)):
        exact = reference_cyclical(int(step), fractions.Fraction(1000, 3), 0.5, 0.1, None, "linear")
        got = float(jax.jit(cyclical_schedule(1000 / 3, 0.5, hold_start=0.1))(step))
        assert got == pytest.approx(exact, abs=2e-6)
    assert float(cyclical_schedule(10, num_cycles=2)(jnp.uint32(2**32 - 1))) == 1.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"hold_start": 0.6, "ratio": 0.5}, "hold_start \\+ ratio"),
        ({"hold_start": 1.0}, "hold_start"),
        ({"hold_start": -0.1}, "hold_start"),
        ({"num_cycles": 0}, "num_cycles"),
        ({"num_cycles": 2.5}, "num_cycles"),
        ({"num_cycles": True}, "num_cycles"),
        ({"num_cycles": 10**9}, "num_cycles \\* period"),
    ],
)
def test_cyclical_bad_hold_and_cycles(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cyclical_schedule(100, **kwargs)


# ---- start and end are returned exactly (==), under jax.jit as well as eagerly -----------


# Under jit XLA rewrites ``x / c`` as ``x * (1 / c)``, so a progress of ``T / T`` can come out
# as 0.99999994; the schedules decide their end points by integer comparisons instead.

levels = (
    st.floats(-10.0, 10.0, allow_nan=False)
    .map(lambda x: float(np.float32(x)))
    .filter(lambda x: x == 0.0 or abs(x) >= 1e-30)
)


def test_the_known_case_jit_monotonic_41():
    schedule = monotonic_schedule(41)
    assert float(jax.jit(schedule)(41)) == 1.0
    assert float(jax.jit(schedule)(jnp.int32(41))) == 1.0


@pytest.mark.slow
@given(
    total=st.integers(1, 5000),
    delay=st.integers(0, 100),
    extra=st.integers(0, 50),
    shape=st.sampled_from(SHAPES),
    start=levels,
    end=levels,
)
def test_monotonic_end_and_start_are_exact_under_jit(total, delay, extra, shape, start, end):
    schedule = monotonic_schedule(total, shape, start=start, end=end, delay=delay)
    jitted = jax.jit(schedule)
    steps = jnp.array([delay + total + extra, delay + total, 0, delay], jnp.int32)
    got = np.asarray(jax.jit(jax.vmap(schedule))(steps))
    want = np.float32([end, end, start, start])
    np.testing.assert_array_equal(got, want)
    assert float(jitted(jnp.uint32(delay + total + extra))) == np.float32(end)
    assert float(jitted(float(delay + total + extra))) == np.float32(end)  # float steps
    assert float(schedule(delay + total)) == np.float32(end)  # eager


@pytest.mark.slow
@given(
    period=st.one_of(
        st.integers(2, 3000),
        st.builds(lambda t, m: t / m, st.integers(1, 3000), st.integers(1, 9)).filter(
            lambda p: p > 1
        ),
    ),
    ratio=st.sampled_from([0.1, 0.25, 1 / 3, 0.5, 0.7, 0.9]),
    hold=st.sampled_from([0.0, 0.05, 0.1]),
    shape=st.sampled_from(SHAPES),
    start=levels,
    end=levels,
    cycle=st.integers(0, 5),
)
def test_cyclical_holds_end_and_start_exactly_under_jit(
    period, ratio, hold, shape, start, end, cycle
):
    schedule = cyclical_schedule(period, ratio, shape, start, end, hold_start=hold)
    exact = fractions.Fraction(period).limit_denominator(10)
    steps = np.arange(int(cycle * exact), int((cycle + 1) * exact) + 1)
    tau = np.array([float((t % exact) / exact) for t in steps])  # exact tau of each step
    got = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32)))
    # every step at or after the ramp's end holds end, at or before its start holds start
    after = tau >= hold + ratio - 1e-9
    before = tau <= hold + 1e-9
    assert (got[after] == np.float32(end)).all(), (steps[after], got[after])
    assert (got[before & ~after] == np.float32(start)).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_num_cycles_end_is_exact_for_ever(shape):
    schedule = cyclical_schedule(1000 / 3, 0.5, shape, start=0.3, end=0.7, num_cycles=2)
    steps = jnp.array([667, 668, 10**6, 2**31 - 1], jnp.int32)
    assert (np.asarray(jax.jit(jax.vmap(schedule))(steps)) == np.float32(0.7)).all()
    assert float(schedule(10**15)) == np.float32(0.7)


# ---- no silent approximation -------------------------------------------------------------


def test_a_period_that_is_no_exact_ratio_raises():
    with pytest.raises(ValueError, match="period"):
        cyclical_schedule(1e9 + 0.5)
    with pytest.raises(ValueError, match="period"):
        cyclical_schedule(fractions.Fraction(2 * 10**9 + 1, 2 * 10**9))  # num * den too big
    assert cyclical_schedule(1000 / 3).period == fractions.Fraction(1000, 3)
    assert cyclical_schedule(12.5).period == fractions.Fraction(25, 2)


def test_numpy_periods_follow_the_same_rule():
    for value in (np.float32(2.5), np.int64(10), np.array(10.0), np.uint16(7)):
        cyclical_schedule(value)
    for value in (np.True_, np.str_("10"), np.array([10.0])):
        with pytest.raises(TypeError, match="period"):
            cyclical_schedule(value)


def test_blocks_near_the_int32_limit_never_wrap():
    schedule = cyclical_schedule(period=10, ratio=0.5)
    first = 2**31 - 2
    values = schedule_values_from(schedule, first, 4096)
    expected = [min((t % 10) / 5, 1.0) for t in range(first, first + 4096)]
    np.testing.assert_allclose(values, expected, atol=1e-6)
    monotone = schedule_values_from(monotonic_schedule(10), first, 8)
    assert (monotone == 1.0).all()
    # a foreign optax schedule is evaluated on int32 steps: past the limit it raises
    with pytest.raises(ValueError, match="2\\*\\*31 - 1"):
        schedule_values_from(optax.linear_schedule(0.0, 1.0, 10), first, 4)


@pytest.mark.slow
def test_float_dtype_is_decided_at_call_time():
    schedule = monotonic_schedule(10)
    fns = annealing(10)
    control = pi_controller(2.0)
    g = geco(1.0, 0.1)
    assert schedule(3).dtype == fns.beta(fns.init()).dtype == jnp.float32
    jax.config.update("jax_enable_x64", True)
    try:
        assert schedule(3).dtype == jnp.float64
        assert fns.beta(fns.init()).dtype == jnp.float64
        assert control.update(control.init(), 1.0).beta.dtype == jnp.float64
        assert g.update(g.init(), 1.0).beta.dtype == jnp.float64
        assert constant_schedule()(3).dtype == jnp.float64
    finally:
        jax.config.update("jax_enable_x64", False)


# ---- schedules are values ----------------------------------------------------------------


ALL = [
    constant_schedule(0.5),
    monotonic_schedule(100, "cosine", start=0.1, delay=5),
    monotonic_schedule(100, "logistic", steepness=8.0),
    cyclical_schedule(1000 / 3, 0.4, "logistic", hold_start=0.1, num_cycles=3),
    cyclical_schedule(fractions.Fraction(7, 2)),
    epochs_on_steps(monotonic_schedule(4), steps_per_epoch=10),
    epochs_on_steps(cyclical_schedule(8), steps_per_epoch=3, hold=False),
    steps_on_epochs(monotonic_schedule(1000), steps_per_epoch=250),
]


@pytest.mark.parametrize("schedule", ALL, ids=repr)
def test_schedules_are_values(schedule):
    twin = from_dict(json.loads(json.dumps(schedule.to_dict())))  # plain JSON round trip
    assert twin == schedule and hash(twin) == hash(schedule) and twin is not schedule
    assert pickle.loads(pickle.dumps(schedule)) == schedule
    assert eval(repr(schedule), vars(kl_schedules) | {"Fraction": fractions.Fraction}) == schedule
    steps = jnp.arange(50)
    np.testing.assert_array_equal(jax.vmap(twin)(steps), jax.vmap(schedule)(steps))
    with pytest.raises(AttributeError, match="cannot assign"):
        schedule.start = 3.0


def test_equal_schedules_do_not_retrace_a_static_argument():
    traces = []

    def beta(schedule, step):
        traces.append(schedule)
        return schedule(step)

    jitted = jax.jit(beta, static_argnums=0)
    for _ in range(3):
        jitted(cyclical_schedule(1000 / 3, 0.5, "cosine"), 5)  # a new, equal object each time
    assert len(traces) == 1
    jitted(cyclical_schedule(1000 / 3, 0.6, "cosine"), 5)
    assert len(traces) == 2


def test_schedules_remain_plain_optax_schedules():
    schedule = cyclical_schedule(100, 0.5)
    joined = optax.join_schedules([constant_schedule(0.0), schedule], boundaries=[10])
    assert float(joined(10 + 50)) == 1.0
    assert float(jax.grad(monotonic_schedule(100))(30.0)) == pytest.approx(0.01)
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
    optimizer.init(jnp.zeros(2))


def test_a_callable_shape_cannot_be_serialised_but_pickles_if_it_can():
    schedule = monotonic_schedule(10, shape=jnp.sqrt)
    with pytest.raises(ValueError, match="callable"):
        schedule.to_dict()
    assert schedule == monotonic_schedule(10, shape=jnp.sqrt)
    assert "shape=<" in repr(schedule)


def test_from_dict_rejects_bad_data():
    with pytest.raises(ValueError, match="kind"):
        from_dict({"kind": "sawtooth"})
    with pytest.raises(ValueError, match="unknown keys"):
        from_dict({"kind": "constant", "value": 1.0, "colour": "red"})
    with pytest.raises(ValueError, match="ratio"):
        from_dict({"kind": "cyclical", "period": 10, "ratio": 2.0})
    with pytest.raises(TypeError, match="data"):
        from_dict("cyclical")
    with pytest.raises(ValueError, match=r"needs keys \['period'\]"):
        from_dict({"kind": "cyclical"})


def test_an_unhashable_callable_shape_is_still_a_shape():
    class Power:
        __hash__ = None  # like a dataclass with eq=True

        def __call__(self, p):
            return p**2

    assert float(monotonic_schedule(10, shape=Power())(5)) == 0.25
    assert float(cyclical_schedule(10, ratio=1.0, shape=Power())(5)) == 0.25


@pytest.mark.parametrize("name", ["linear", "cosine", "logistic"])
def test_the_librarys_ramp_functions_stand_for_their_names(name):
    function = getattr(kl_schedules, name)
    for make in (lambda s: monotonic_schedule(10, s), lambda s: cyclical_schedule(10, shape=s)):
        by_function, by_name = make(function), make(name)
        assert by_function == by_name and hash(by_function) == hash(by_name)
        assert by_function.to_dict() == by_name.to_dict()
        assert from_dict(json.loads(json.dumps(by_function.to_dict()))) == by_name


# ---- epochs and steps --------------------------------------------------------------------


@pytest.mark.slow
@given(st.integers(0, 10**12), st.integers(1, 1000), st.booleans())
def test_epochs_on_steps_matches_the_formula(step, per_epoch, hold):
    epochs = monotonic_schedule(20, "cosine")
    schedule = epochs_on_steps(epochs, per_epoch, hold=hold)
    epoch = step // per_epoch if hold else step / per_epoch
    want = float(np_shape("cosine", np.array(min(epoch / 20, 1.0))))
    assert float(schedule(step)) == pytest.approx(want, abs=2e-6)
    if step < 2**31:
        assert float(jax.jit(schedule)(jnp.int32(step))) == pytest.approx(want, abs=2e-6)


def test_steps_on_epochs_and_the_scvi_recipe():
    per_epoch = steps_on_epochs(monotonic_schedule(1000), steps_per_epoch=300)
    assert [float(per_epoch(e)) for e in range(5)] == pytest.approx([0, 0.3, 0.6, 0.9, 1.0])
    assert float(jax.jit(per_epoch)(jnp.int32(2))) == pytest.approx(0.6)
    scvi_like = epochs_on_steps(monotonic_schedule(400), steps_per_epoch=50)
    assert float(scvi_like(50 * 200 + 49)) == 0.5 and float(scvi_like(50 * 400)) == 1.0


@pytest.mark.slow
@given(
    epoch=st.integers(-(2**31), 2**32 - 1),
    per_epoch=st.sampled_from([1, 3, 7, 1000, 2**20, 2**31 - 1]),
)
def test_steps_on_epochs_never_wraps_around(epoch, per_epoch):
    """Against the exact step (a Python int): equal, or NaN where a 32-bit step cannot hold
    it; never the value of a wrapped-around step."""
    inner = cyclical_schedule(7, ratio=0.5)
    schedule = steps_on_epochs(inner, per_epoch)
    truth = float(inner(epoch * per_epoch)) if epoch * per_epoch >= -(2**31) else None
    if epoch * per_epoch < 2**63:
        assert float(schedule(np.array([epoch], np.int64))[0]) == float(inner(epoch * per_epoch))
    for kind in (jnp.int32, jnp.uint32):
        info = jnp.iinfo(kind)
        if not info.min <= epoch <= info.max:
            continue
        got = float(jax.jit(schedule)(kind(epoch)))
        if info.min <= epoch * per_epoch <= 2**32 - 1 and truth is not None:
            assert got == pytest.approx(truth, abs=1e-6), kind
        else:
            assert math.isnan(got), kind


def test_steps_on_epochs_raises_or_is_nan_past_64_bits():
    schedule = steps_on_epochs(cyclical_schedule(7), 2)
    for epochs in (np.array([2**64 - 1], np.uint64), np.array([-(2**63)], np.int64)):
        with pytest.raises(ValueError, match="int64"):
            schedule(epochs)
    with jax.enable_x64(True):
        big = jnp.asarray([2**62, 3, -(2**62)], jnp.int64)
        got = np.asarray(jax.jit(schedule)(big))
        assert math.isnan(got[0]) and math.isnan(got[2])
        assert got[1] == float(cyclical_schedule(7)(6))
        assert float(jax.jit(schedule)(jnp.asarray(2**61, jnp.int64))) == pytest.approx(
            float(cyclical_schedule(7)(2**62)), abs=1e-6
        )


@pytest.mark.slow
@pytest.mark.parametrize("period", [3, 2.5, 7])
@pytest.mark.parametrize("per_epoch", [1, 7, 10, 13])
def test_epochs_on_steps_without_hold_is_exact_at_epoch_boundaries_under_jit(period, per_epoch):
    inner = cyclical_schedule(period, ratio=1.0, start=0.2, end=0.9)
    schedule = epochs_on_steps(inner, per_epoch, hold=False)
    epochs = np.arange(40)
    steps = jnp.asarray(epochs * per_epoch, jnp.int32)
    want = np.array([float(inner(int(e))) for e in epochs], np.float32)
    jitted = np.asarray(jax.jit(schedule)(steps))
    # the inner schedule at the integer epoch, in the same regime (jit or eager) ...
    np.testing.assert_array_equal(jitted, np.asarray(jax.jit(inner)(jnp.asarray(epochs))))
    np.testing.assert_array_equal(np.asarray(schedule(np.asarray(steps))), want)
    assert [float(schedule(int(s))) for s in steps] == want.tolist()
    # ... so start and end are exact at every cycle boundary (plain step / n missed them)
    ends = np.isin(want, np.float32([0.2, 0.9]))
    assert ends.any() and (jitted[ends] == want[ends]).all()


# ---- describe ----------------------------------------------------------------------------


def test_describe_a_warmup_longer_than_training():
    summary = describe(monotonic_schedule(10_000), num_steps=8_000)
    assert not summary.reaches_final and summary.first_step_at_final is None
    assert summary.final_value == 1.0 and summary.min == 0.0
    assert summary.max == pytest.approx(7999 / 10_000)
    assert "never reaches 1" in str(summary)


@pytest.mark.slow
def test_describe_cycles_and_first_hit():
    summary = describe(cyclical_schedule(1000 / 3, 0.5, num_cycles=2), num_steps=1000)
    assert summary.first_step_at_final == math.ceil(1000 / 6)
    assert summary.cycles == 2 and (summary.min, summary.max) == (0.0, 1.0)
    assert describe(cyclical_schedule(250), 1000).cycles == 4.0
    assert describe(epochs_on_steps(cyclical_schedule(4), 10), 200).cycles == 5.0
    assert describe(constant_schedule(0.3), 5).first_step_at_final == 0


def test_describe_a_foreign_optax_schedule():
    summary = describe(optax.linear_schedule(0.0, 1.0, 100), num_steps=150)
    assert summary.final_value == 1.0 and summary.first_step_at_final == 100
    assert summary.cycles is None


@pytest.mark.parametrize("make_annealer", annealers())
def test_describe_reports_an_annealers_own_betas(make_annealer):
    annealer = make_annealer()
    annealer.step()
    before = annealer.state_dict()
    betas = recorded_betas(make_annealer, 30)
    summary = describe(annealer, 30)
    assert annealer.state_dict() == before
    assert (summary.min, summary.max) == (min(betas), max(betas))
    first = next((t for t, beta in enumerate(betas) if beta == summary.final_value), None)
    assert summary.first_step_at_final == first


def test_describe_the_reported_annealer():
    summary = describe(Annealer(10), 20)  # was: "reaches 9.5 at step 19"
    assert (summary.final_value, summary.first_step_at_final, summary.cycles) == (1.0, 10, None)
    cyclical = describe(Annealer(10, cyclical=True), 25)
    assert cyclical.final_value == 1.0 and not cyclical.reaches_final and cyclical.cycles == 2.5
    assert str(cyclical) == "never reaches 1 within 25 steps, 2.5 cycles; beta in [0, 0.9]"


def test_describe_a_long_run_of_an_annealer_steps_only_its_distinct_counts():
    summary = describe(Annealer(1000, "cosine"), 10**7)
    assert summary.first_step_at_final == 1000 and summary.max == 1.0

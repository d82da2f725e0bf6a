"""Schedules against closed-form float64 references, across dtypes, transforms and huge steps."""

from __future__ import annotations

import dataclasses
import fractions
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kl_schedules import (
    ConstantSchedule,
    CyclicalSchedule,
    EpochsOnSteps,
    MonotonicSchedule,
    StepsOnEpochs,
    constant_schedule,
    cyclical_schedule,
    epochs_on_steps,
    from_dict,
    monotonic_schedule,
    steps_on_epochs,
)
from tests.reference import np_monotonic, py_cyclical

SHAPES = ["linear", "cosine", "logistic"]
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
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    expected = (sig(-3.0) - sig(-6.0)) / (sig(6.0) - sig(-6.0))
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

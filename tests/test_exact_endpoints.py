"""``start`` and ``end`` are returned exactly (==), under jax.jit as well as eagerly.

Under jit XLA rewrites ``x / c`` as ``x * (1 / c)``, so a progress of ``T / T`` can come out
as 0.99999994; the schedules decide their end points by integer comparisons instead.
"""

from __future__ import annotations

import fractions

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kl_schedules import annealing, cyclical_schedule, monotonic_schedule

SHAPES = ["linear", "cosine", "logistic"]
# float32 values, but no subnormals: XLA on CPU flushes them to zero
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


@pytest.mark.slow
@given(total=st.integers(1, 3000), shape=st.sampled_from(["linear", "cosine"]))
def test_annealing_reaches_one_exactly_under_jit(total, shape):
    fns = annealing(total, shape, baseline=0.0)
    state = fns.init()._replace(step=jnp.int32(total))
    assert float(jax.jit(fns.beta)(state)) == 1.0
    assert float(jax.jit(fns.beta)(fns.init())) == 0.0


@pytest.mark.parametrize("shape", SHAPES)
def test_num_cycles_end_is_exact_for_ever(shape):
    schedule = cyclical_schedule(1000 / 3, 0.5, shape, start=0.3, end=0.7, num_cycles=2)
    steps = jnp.array([667, 668, 10**6, 2**31 - 1], jnp.int32)
    assert (np.asarray(jax.jit(jax.vmap(schedule))(steps)) == np.float32(0.7)).all()
    assert float(schedule(10**15)) == np.float32(0.7)

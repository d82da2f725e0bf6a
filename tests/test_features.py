"""The features beyond the first version, each against an independent reference:
complete cyclical schedules, schedules as values, epochs and steps, describe(), the PI
moving average, and NVAE's KL balancing."""

from __future__ import annotations

import fractions
import json
import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kl_schedules
from kl_schedules import (
    constant_schedule,
    cyclical_schedule,
    describe,
    epochs_on_steps,
    from_dict,
    monotonic_schedule,
    steps_on_epochs,
)
from kl_schedules.control import PIController, kl_balance, pi_controller
from tests.reference import np_shape

# ---- cyclical: hold_start and num_cycles ---------------------------------------------------


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


# ---- schedules are values --------------------------------------------------------------------

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

    @jax.jit
    def dummy(x):
        return x

    def beta(schedule, step):
        traces.append(schedule)
        return schedule(step)

    jitted = jax.jit(beta, static_argnums=0)
    for _ in range(3):
        jitted(cyclical_schedule(1000 / 3, 0.5, "cosine"), 5)  # a new, equal object each time
    assert len(traces) == 1
    jitted(cyclical_schedule(1000 / 3, 0.6, "cosine"), 5)
    assert len(traces) == 2
    assert dummy(1) == 1


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


# ---- epochs and steps ------------------------------------------------------------------------


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


# ---- describe ----------------------------------------------------------------------------------


def test_describe_a_warmup_longer_than_training():
    summary = describe(monotonic_schedule(10_000), num_steps=8_000)
    assert not summary.reaches_final and summary.first_step_at_final is None
    assert summary.final_value == 1.0 and summary.min == 0.0
    assert summary.max == pytest.approx(7999 / 10_000)
    assert "never reaches 1" in str(summary)


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


# ---- PI on a moving average of the KL (DynamicVAE) -----------------------------------------


@pytest.mark.slow
@given(
    st.lists(st.one_of(st.floats(0.0, 30.0), st.just(math.nan)), min_size=1, max_size=40),
    st.integers(1, 12),
)
def test_pi_window_host_matches_pure_and_a_numpy_reference(kls, window):
    control = pi_controller(3.0, k_i=1e-2, window=window)
    host = PIController(3.0, k_i=1e-2, window=window)
    reference = PIController(3.0, k_i=1e-2)  # window 1, fed the moving average by hand
    state, seen = control.init(), []
    update = jax.jit(control.update)
    for kl in kls:
        state = update(state, kl)
        host.update(kl)
        if not math.isnan(kl):
            seen.append(kl)
            reference.update(float(np.mean(seen[-window:])))
        assert host.beta == pytest.approx(reference.beta, rel=1e-12, abs=1e-15)
        assert float(state.beta) == pytest.approx(host.beta, rel=1e-4, abs=1e-5)
    assert host.recent_kl == seen[::-1][:window]


# ---- KL balancing (NVAE) -------------------------------------------------------------------


def reference_balance(kl, alpha, beta):
    mean = np.abs(kl).mean(0) + 0.01
    c = mean / alpha
    gamma = c / c.mean() if beta < 1 else np.ones_like(c)
    return beta * (kl * gamma).sum(-1), gamma


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.999, 1.0])
def test_kl_balance_against_numpy_in_every_framework(beta):
    rng = np.random.default_rng(0)
    kl, alpha = rng.uniform(0, 5, size=(8, 5)), np.array([1.0, 1.0, 4.0, 4.0, 16.0])
    want_term, want_gamma = reference_balance(kl, alpha, beta)
    term, gamma = kl_balance(kl, beta, alpha)
    np.testing.assert_allclose(term, want_term, rtol=1e-12)
    np.testing.assert_allclose(gamma, want_gamma, rtol=1e-12)
    term, gamma = kl_balance(jnp.asarray(kl, jnp.float32), jnp.float32(beta), jnp.asarray(alpha))
    np.testing.assert_allclose(term, want_term, rtol=1e-5)
    np.testing.assert_allclose(np.mean(gamma), 1.0, rtol=1e-5)
    torch = pytest.importorskip("torch")
    term, gamma = kl_balance(torch.tensor(kl), beta, torch.tensor(alpha))
    np.testing.assert_allclose(term.numpy(), want_term, rtol=1e-12)


def test_kl_balance_coefficients_are_constants_for_the_optimiser():
    kl = jnp.array([[3.0, 1.0], [5.0, 1.0]])
    grad = jax.grad(lambda k: kl_balance(k, 0.5)[0].sum())(kl)
    _, gamma = kl_balance(kl, 0.5)
    np.testing.assert_allclose(grad, 0.5 * jnp.broadcast_to(gamma, kl.shape), rtol=1e-6)
    torch = pytest.importorskip("torch")
    kl_t = torch.tensor([[3.0, 1.0], [5.0, 1.0]], requires_grad=True)
    term, gamma_t = kl_balance(kl_t, 0.5)
    term.sum().backward()
    np.testing.assert_allclose(kl_t.grad.numpy(), 0.5 * gamma_t.expand(2, 2).numpy(), rtol=1e-6)


def test_kl_balance_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        kl_balance(np.ones((2, 3)), 0.5, alpha=np.ones(2))
    with pytest.raises(ValueError, match="kl_per_group"):
        kl_balance(np.ones((2, 3, 4)), 0.5)
    with pytest.raises(ValueError, match="epsilon"):
        kl_balance(np.ones((2, 3)), 0.5, epsilon=0.0)

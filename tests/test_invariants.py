"""Invariants no user action can break: host objects' beta stays in bounds under any public
assignment, errors are the original's ValueError, NumPy scalars are treated alike by every
API, no silent approximation, and arrays come back as the kind that went in."""

from __future__ import annotations

import fractions
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kl_schedules import (
    Annealer,
    annealing,
    constant_schedule,
    cyclical_schedule,
    monotonic_schedule,
)
from kl_schedules._schedules import schedule_values_from
from kl_schedules.control import (
    GECO,
    PIController,
    active_units,
    capacity_objective,
    capacity_schedule,
    free_bits,
    gaussian_kl,
    geco,
    kl_balance,
    kl_per_dimension,
    pi_controller,
)

# ---- host objects: beta in [baseline, 1] whatever is assigned ----------------------------

assignments = st.lists(
    st.one_of(
        st.tuples(st.just("current_step"), st.integers(-5, 40)),
        st.tuples(st.just("total_steps"), st.integers(-2, 40)),
        st.tuples(st.just("baseline"), st.floats(-0.5, 1.5)),
        st.tuples(st.just("shape"), st.sampled_from(["linear", "cosine", "logistic", "sine"])),
        st.tuples(st.just("cyclical"), st.sampled_from([True, False, np.True_, 1, "yes"])),
        st.tuples(st.just("step"), st.none()),
    ),
    max_size=40,
)


@given(assignments)
def test_no_assignment_puts_beta_outside_baseline_and_one(actions):
    annealer = Annealer(10, "cosine", baseline=0.2)
    for name, value in actions:
        if name == "step":
            annealer.step()
        else:
            before = annealer.state_dict()
            try:
                setattr(annealer, name, value)
            except ValueError:  # every rejection is a ValueError (TypeError too, for types)
                assert annealer.state_dict() == before  # and changes nothing
        assert annealer.baseline <= annealer.beta <= 1.0
        assert 0 <= annealer.current_step <= annealer.total_steps


def test_the_reported_cases_raise_naming_the_attribute():
    annealer = Annealer(10)
    for _ in range(8):
        annealer.step()
    with pytest.raises(ValueError, match="total_steps must be >= current_step"):
        annealer.total_steps = 4  # beta would be 2.0
    with pytest.raises(ValueError, match="current_step"):
        annealer.current_step = -3  # beta would be -0.3
    with pytest.raises(ValueError, match="current_step"):
        annealer.current_step = 11
    annealer.current_step = 2  # the documented way to shrink: step first
    annealer.total_steps = 4
    assert annealer.beta == 0.5


@pytest.mark.parametrize(
    "state",
    [
        {"beta": 2.0, "integral": 0.0},
        {"beta": -0.1, "integral": 0.0},
        {"beta": math.nan, "integral": 0.0},
        {"beta": 0.5, "integral": math.inf},
    ],
)
def test_pi_load_state_dict_checks_bounds(state):
    controller = PIController(target_kl=2.0, beta_max=1.0)
    with pytest.raises(ValueError, match=r"beta|integral"):
        controller.load_state_dict(state)
    assert controller.beta == 0.0


@pytest.mark.parametrize("beta", [0.0, 1e11, -1.0, math.inf])
def test_geco_load_state_dict_checks_bounds(beta):
    controller = GECO(goal=1.0, step_size=0.1)
    with pytest.raises(ValueError, match="beta"):
        controller.load_state_dict({"beta": beta, "error_ema": 0.0, "num_updates": 0})


def test_controller_state_is_read_only():
    controller = PIController(target_kl=2.0)
    with pytest.raises(AttributeError):
        controller.beta = 5.0
    with pytest.raises(AttributeError):
        GECO(1.0, 0.1).beta = -1.0


# ---- drop-in error types -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total_steps": "10"},
        {"total_steps": 2.5},
        {"total_steps": 0},
        {"total_steps": True},
        {"total_steps": 10, "shape": "sine"},
        {"total_steps": 10, "shape": 3},
        {"total_steps": 10, "baseline": 2.0},
        {"total_steps": 10, "baseline": "0.5"},
        {"total_steps": 10, "cyclical": 1},
        {"total_steps": 10, "disable": "no"},
    ],
)
def test_where_the_original_raised_value_error_so_do_we(kwargs):
    with pytest.raises(ValueError):
        Annealer(**kwargs)
    flags = {name: kwargs.pop(name) for name in ("cyclical", "disable") if name in kwargs}
    with pytest.raises(ValueError):  # the pure form agrees
        annealing(**kwargs).init(**{"cyclical": flags.get("cyclical", "not a bool")})


def test_type_errors_are_both_type_and_value_errors():
    with pytest.raises(TypeError) as caught:
        Annealer(10, cyclical="yes")
    assert isinstance(caught.value, ValueError)


# ---- one rule for NumPy scalars, in every API ---------------------------------------------

NUMPY_ACCEPTED = {
    "count": [np.int64(10), np.int32(10), np.uint16(10), np.float64(10.0), np.array(10)],
    "real": [np.float32(0.25), np.float64(0.25), np.int64(1), np.array(0.25)],
    "flag": [np.True_, np.False_, np.array(True)],
}
NUMPY_REJECTED = {
    "count": [np.True_, np.float32(2.5), np.array([10])],
    "real": [np.True_, np.array([0.25]), np.str_("0.25")],
    "flag": [np.int64(1), np.float32(1.0), np.array([True])],
}
COUNT_APIS = {
    "Annealer": lambda v: Annealer(v),
    "annealing": lambda v: annealing(v),
    "monotonic": lambda v: monotonic_schedule(v),
    "cyclical.num_cycles": lambda v: cyclical_schedule(4, num_cycles=v),
    "PIController.window": lambda v: PIController(1.0, window=v),
    "free_bits.groups": lambda v: free_bits(np.zeros(20), 0.1, groups=v),
}
REAL_APIS = {
    "Annealer.baseline": lambda v: Annealer(10, baseline=v),
    "annealing.baseline": lambda v: annealing(10, baseline=v),
    "monotonic.start": lambda v: monotonic_schedule(10, start=v),
    "cyclical.ratio": lambda v: cyclical_schedule(10, ratio=v),
    "constant": lambda v: constant_schedule(v),
    "pi_controller": lambda v: pi_controller(v),
    "PIController": lambda v: PIController(v),
    "geco": lambda v: geco(1.0, v),
    "GECO": lambda v: GECO(1.0, v),
    "free_bits": lambda v: free_bits(np.zeros(3), v),
}
FLAG_APIS = {
    "Annealer.cyclical": lambda v: Annealer(10, cyclical=v),
    "Annealer.disable": lambda v: Annealer(10, disable=v),
    "Annealer.set_cyclical": lambda v: Annealer(10).set_cyclical(v),
    "annealing.init": lambda v: annealing(10).init(cyclical=v),
    "annealing.set_cyclical": lambda v: annealing(10).set_cyclical(annealing(10).init(), v),
}
APIS = {"count": COUNT_APIS, "real": REAL_APIS, "flag": FLAG_APIS}


@pytest.mark.parametrize(
    "kind,api,value",
    [(k, a, v) for k, apis in APIS.items() for a in apis for v in NUMPY_ACCEPTED[k]],
)
def test_numpy_scalars_are_accepted_by_every_api(kind, api, value):
    APIS[kind][api](value)


@pytest.mark.parametrize(
    "kind,api,value",
    [(k, a, v) for k, apis in APIS.items() for a in apis for v in NUMPY_REJECTED[k]],
)
def test_numpy_scalars_are_rejected_by_every_api(kind, api, value):
    with pytest.raises(ValueError):
        APIS[kind][api](value)


# ---- no silent approximation ---------------------------------------------------------------


def test_a_period_that_is_no_exact_ratio_raises():
    with pytest.raises(ValueError, match="period"):
        cyclical_schedule(1e9 + 0.5)
    with pytest.raises(ValueError, match="period"):
        cyclical_schedule(fractions.Fraction(2 * 10**9 + 1, 2 * 10**9))  # num * den too big
    assert cyclical_schedule(1000 / 3).period == fractions.Fraction(1000, 3)
    assert cyclical_schedule(12.5).period == fractions.Fraction(25, 2)


def test_blocks_near_the_int32_limit_never_wrap():
    schedule = cyclical_schedule(period=10, ratio=0.5)
    first = 2**31 - 2
    values = schedule_values_from(schedule, first, 4096)
    expected = [min((t % 10) / 5, 1.0) for t in range(first, first + 4096)]
    np.testing.assert_allclose(values, expected, atol=1e-6)
    monotone = schedule_values_from(monotonic_schedule(10), first, 8)
    assert (monotone == 1.0).all()
    # a foreign optax schedule is evaluated on int32 steps: past the limit it raises
    import optax

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


# ---- array in, same array out ----------------------------------------------------------------


def kinds():
    yield "numpy", np.asarray, np.ndarray
    yield "jax", jnp.asarray, jax.Array
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    yield "torch", torch.as_tensor, torch.Tensor


@pytest.mark.parametrize("name,make,kind", list(kinds()), ids=lambda x: str(x)[:5])
def test_kl_helpers_return_the_kind_they_are_given(name, make, kind):
    rng = np.random.default_rng(0)
    mu, logvar = make(rng.normal(size=(5, 4))), make(rng.normal(size=(5, 4)))
    per_sample = gaussian_kl(mu, logvar)
    per_dim = kl_per_dimension(mu, logvar)
    clamped = free_bits(per_dim, 0.5)
    count = active_units(mu)
    for value in (per_sample, per_dim):
        assert isinstance(value, kind), (name, type(value))
    for value in (clamped, count):  # 0-d results: NumPy gives a NumPy scalar
        assert isinstance(value, (kind, np.generic)), (name, type(value))
        assert type(value).__module__.split(".")[0] == {"jax": "jaxlib"}.get(
            name, name
        ) or isinstance(value, kind)
    np.testing.assert_allclose(
        np.asarray(per_sample),
        -0.5 * (1 + np.asarray(logvar) - np.asarray(mu) ** 2 - np.exp(np.asarray(logvar))).sum(-1),
        rtol=1e-5,
    )


def test_kl_helpers_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        gaussian_kl(np.zeros((2, 3)), np.zeros((2, 4)))


def test_numpy_periods_follow_the_same_rule():
    for value in (np.float32(2.5), np.int64(10), np.array(10.0), np.uint16(7)):
        cyclical_schedule(value)
    for value in (np.True_, np.str_("10"), np.array([10.0])):
        with pytest.raises(TypeError, match="period"):
            cyclical_schedule(value)


# ---- controllers' inputs and checkpoints -----------------------------------------------------


@pytest.mark.parametrize("bad", [True, np.True_, "3", b"3", np.array([1.0, 2.0]), None])
@pytest.mark.parametrize("make", [lambda: PIController(2.0), lambda: GECO(1.0, 0.05)])
def test_controller_updates_reject_what_is_not_a_number(make, bad):
    controller = make()
    before = controller.state_dict()
    with pytest.raises(TypeError, match=r"kl|recon_error") as caught:
        controller.update(bad)
    assert isinstance(caught.value, ValueError)
    assert controller.state_dict() == before


@pytest.mark.parametrize("make", [lambda: PIController(2.0), lambda: GECO(1.0, 0.05)])
def test_controller_updates_take_numbers_numpy_scalars_and_0d_arrays(make):
    values = [3, 3.0, np.float32(3.0), np.int64(3), np.array(3.0), jnp.asarray(3.0)]
    betas = []
    for value in values:
        controller = make()
        betas.append(controller.update(value))
    assert len(set(betas)) == 1


def test_geco_load_state_dict_changes_nothing_when_an_entry_is_bad():
    geco_control = GECO(1.0, 0.05)
    geco_control.update(2.0)
    before = geco_control.state_dict()
    with pytest.raises(ValueError, match="num_updates"):
        geco_control.load_state_dict({"beta": 0.5, "error_ema": 7.0, "num_updates": -1})
    assert geco_control.state_dict() == before


@pytest.mark.parametrize(
    "make,state",
    [
        (lambda: PIController(2.0), {"integral": 0.0}),
        (lambda: GECO(1.0, 0.05), {"beta": 1.0, "error_ema": 0.0}),
        (lambda: Annealer(5), {"current_step": 0}),
        (lambda: PIController(2.0), {"beta": 0.1, "integral": 0.0, "typo": 1}),
    ],
)
def test_load_state_dict_names_missing_and_unknown_keys(make, state):
    with pytest.raises(ValueError, match="state_dict must have the keys"):
        make().load_state_dict(state)


def test_a_numpy_string_shape_is_stored_as_a_plain_string():
    annealer = Annealer(5, shape=np.str_("cosine"))
    assert type(annealer.shape) is str and "np.str_" not in repr(annealer)
    assert type(cyclical_schedule(10, shape=np.str_("cosine")).shape) is str


# ---- a 0-d number of any kind combines with an array of any kind (issue 18, item 5) ---------


def _numbers(value):
    """``value`` as a 0-d number of every kind: Python, NumPy, JAX (ours) and torch."""
    import torch

    return [value, np.float32(value), np.float64(value), jnp.asarray(value), torch.tensor(value)]


def _arrays(values):
    import torch

    return [np.asarray(values), jnp.asarray(values), torch.tensor(values)]


def _same_kind(result, array):
    if isinstance(array, np.ndarray):
        return isinstance(result, (np.ndarray, np.generic))
    return isinstance(result, type(array)) or (
        isinstance(array, jax.Array) and isinstance(result, jax.Array)
    )


def test_the_reported_mixes_work_and_follow_the_array():
    torch = pytest.importorskip("torch")
    kl = torch.tensor([[3.0, 1.0], [5.0, 1.0]])
    from_schedule = monotonic_schedule(100)(50)  # a JAX float32, our own schedule's output
    for beta in (from_schedule, np.float32(0.5)):
        term, coefficients = kl_balance(kl, beta=beta)
        assert isinstance(term, torch.Tensor) and term.dtype == torch.float32
        np.testing.assert_allclose(coefficients.numpy(), [1.598, 0.402], atol=1e-3)
    capacity = capacity_schedule(25.0, 100)(50)
    loss = capacity_objective(torch.tensor([10.0, 15.0]), capacity)
    assert isinstance(loss, torch.Tensor)
    np.testing.assert_allclose(loss.numpy(), [2500.0, 2500.0])
    term, coefficients = kl_balance(np.array([[3.0, 1.0]]), beta=jnp.asarray(0.5))
    assert type(term) is np.ndarray and term.dtype == np.float64
    assert type(coefficients) is np.ndarray


def test_every_number_kind_with_every_array_kind():
    pytest.importorskip("torch")
    kl = [[3.0, 1.0], [5.0, 1.0]]
    for array in [*_arrays(kl), np.asarray(kl, np.float32)]:
        for beta in _numbers(0.5):
            term, coefficients = kl_balance(array, beta=beta)
            assert _same_kind(term, array) and _same_kind(coefficients, array), (array, beta)
            assert term.dtype == array.dtype, (type(array), type(beta), term.dtype)
            np.testing.assert_allclose(np.asarray(term), [2.598, 4.195], atol=1e-3)
        for capacity in _numbers(2.0):
            loss = capacity_objective(array, capacity, gamma=2.0)
            assert _same_kind(loss, array) and loss.dtype == array.dtype
            np.testing.assert_allclose(np.asarray(loss), [[2.0, 2.0], [6.0, 2.0]])
            clamped = free_bits(array, capacity)  # min_nats of any kind too
            assert _same_kind(clamped, array)
            np.testing.assert_allclose(np.asarray(clamped), [5.0, 7.0])


def test_a_number_kl_takes_the_kind_of_an_array_capacity():
    torch = pytest.importorskip("torch")
    assert capacity_objective(12.0, 12.5) == 500.0
    result = capacity_objective(12.0, torch.tensor(12.5))
    assert isinstance(result, torch.Tensor) and float(result) == 500.0


def test_a_torch_beta_keeps_its_gradient():
    torch = pytest.importorskip("torch")
    beta = torch.tensor(0.5, requires_grad=True)
    kl = torch.tensor([[3.0, 1.0]])
    term, coefficients = kl_balance(kl, beta=beta)
    term.sum().backward()  # d(beta * sum(gamma * kl)) / d beta = sum(gamma * kl)
    assert float(beta.grad) == pytest.approx(float((kl * coefficients).sum()))


def test_a_traced_beta_works_with_jax_arrays_and_is_refused_with_others():
    kl = np.array([[3.0, 1.0], [5.0, 1.0]])
    traced = jax.jit(lambda b: kl_balance(jnp.asarray(kl), beta=b)[0])(0.5)
    np.testing.assert_allclose(traced, [2.598, 4.195], atol=1e-3)
    with pytest.raises(TypeError, match="beta is a traced JAX value"):
        jax.jit(lambda b: kl_balance(kl, beta=b)[0])(0.5)


@pytest.mark.parametrize("bad", [True, np.bool_(False), jnp.asarray(True), "0.5", None])
def test_kl_helpers_refuse_what_is_not_a_number(bad):
    with pytest.raises(TypeError, match="beta") as raised:
        kl_balance(np.ones((2, 2)), beta=bad)
    assert raised.value.argument == "beta"
    with pytest.raises(TypeError, match="capacity"):
        capacity_objective(np.ones(2), bad)


def test_kl_helpers_refuse_an_array_where_a_number_belongs():
    with pytest.raises(TypeError, match="beta must be a number or a 0-d array"):
        kl_balance(np.ones((2, 2)), beta=np.array([0.5, 0.5]))

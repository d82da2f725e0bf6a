"""kl_schedules.control: the PI and GECO controllers (pure and host twins, on synthetic
plants, their bounds, inputs and checkpoints), capacity annealing and the KL helpers
(gaussian_kl, free bits, active units, KL balancing) in NumPy, JAX and torch."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kl_schedules import monotonic_schedule
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


def kl_plant(beta, noise):
    """Synthetic plant: KL falls as beta rises."""
    return 8.0 * jnp.exp(-3.0 * beta) + noise


def run_pi(control, steps=20_000, noise_scale=0.2, seed=0):
    noise = noise_scale * jax.random.normal(jax.random.key(seed), (steps,))

    def body(state, eps):
        kl = kl_plant(state.beta, eps)
        return control.update(state, kl), (state.beta, kl)

    return jax.jit(lambda s: jax.lax.scan(body, s, noise))(control.init())


@pytest.mark.parametrize("target", [1.0, 3.0, 5.0])
def test_pi_settles_within_5_percent_of_target(target):
    _, (betas, kls) = run_pi(pi_controller(target_kl=target))
    settled = float(jnp.mean(kls[-3000:]))
    assert abs(settled - target) <= 0.05 * target, settled
    # and beta sits near the plant's inverse, ln(8 / target) / 3
    assert float(jnp.mean(betas[-3000:])) == pytest.approx(math.log(8 / target) / 3, abs=0.03)


def test_pi_beta_never_leaves_bounds_and_antiwindup_works():
    # Target unreachable within [0, 0.1]: beta saturates at 0.1 and the integral stays put.
    control = pi_controller(target_kl=1.0, k_i=1e-3, beta_min=0.0, beta_max=0.1)
    state, (betas, _) = run_pi(control, steps=5000)
    assert float(betas.min()) >= 0.0 and float(betas.max()) <= 0.1
    assert float(state.integral) <= 0.1  # no wind-up past the bound
    # when the plant then demands low beta, beta leaves saturation at once (no wind-down lag)
    after = control.update(state, 0.0)  # KL far below target
    assert float(after.beta) < 0.1


def test_pi_ignores_non_finite_kl():
    control = pi_controller(target_kl=3.0)
    state = control.update(control.init(), 8.0)
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        assert control.update(state, bad) == state
    host = PIController(target_kl=3.0)
    host.update(8.0)
    before = host.state_dict()
    for bad in (math.nan, math.inf, -math.inf):
        host.update(bad)
        assert host.state_dict() == before


@pytest.mark.slow
@given(
    st.lists(st.one_of(st.floats(0.0, 50.0), st.just(math.nan)), min_size=1, max_size=40),
    st.floats(0.1, 20.0),
)
def test_pi_host_matches_pure_and_stays_in_bounds(kls, target):
    # pure (float32) vs host (float64): equal to float32 precision
    control = pi_controller(target, k_i=1e-2, beta_min=0.1, beta_max=2.0)
    host = PIController(target, k_i=1e-2, beta_min=0.1, beta_max=2.0)
    state = control.init()
    assert float(state.beta) == pytest.approx(host.beta)
    update = jax.jit(control.update)
    for kl in kls:
        state = update(state, kl)
        beta = host.update(kl)
        assert 0.1 <= beta <= 2.0
        assert float(state.beta) == pytest.approx(beta, rel=1e-4, abs=1e-5)


def recon_plant(beta, noise):
    """Synthetic plant: reconstruction error rises with beta."""
    return 10.0 + 5.0 * beta + noise


@pytest.mark.parametrize("goal", [11.0, 12.0, 14.0])
def test_geco_settles_within_5_percent_of_goal(goal):
    control = geco(goal=goal, step_size=0.01, beta_init=1.0)
    noise = 0.3 * jax.random.normal(jax.random.key(1), (20_000,))

    def body(state, eps):
        err = recon_plant(state.beta, eps)
        return control.update(state, err), (state.beta, err)

    _, (betas, errs) = jax.lax.scan(body, control.init(), noise)
    assert abs(float(jnp.mean(errs[-3000:])) - goal) <= 0.05 * goal
    assert float(jnp.mean(betas[-3000:])) == pytest.approx((goal - 10.0) / 5.0, abs=0.05)


def test_geco_clamps_and_ignores_non_finite():
    control = geco(goal=1.0, step_size=10.0, beta_min=0.5, beta_max=2.0)
    state = control.init()
    for err in (1e9, -1e9, 1e9):  # enormous steps: clamped, no overflow
        state = control.update(state, err)
        assert 0.5 <= float(state.beta) <= 2.0 and bool(jnp.isfinite(state.beta))
    assert control.update(state, jnp.nan) == state
    host = GECO(goal=1.0, step_size=10.0, beta_min=0.5, beta_max=2.0)
    for err in (1e9, -1e9, 1e9):
        host.update(err)
    assert host.beta == pytest.approx(float(state.beta))
    before = host.state_dict()
    host.update(math.inf)
    assert host.state_dict() == before


@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=30))
def test_geco_host_matches_pure(errors):
    control, host = geco(goal=20.0, step_size=0.05), GECO(goal=20.0, step_size=0.05)
    state = control.init()
    for err in errors:
        state = control.update(state, err)
        host.update(err)
        assert float(state.beta) == pytest.approx(host.beta, rel=1e-4)
        assert float(state.error_ema) == pytest.approx(host.error_ema, rel=1e-5, abs=1e-5)


def test_host_state_dict_round_trip_continues_identically():
    a = PIController(3.0)
    for kl in (8, 7, 6):
        a.update(kl)
    b = PIController(3.0)
    b.load_state_dict(a.state_dict())
    assert [a.update(5.0) for _ in range(3)] == [b.update(5.0) for _ in range(3)]
    g = GECO(goal=5.0, step_size=0.1)
    g.update(6.0)
    h = GECO(goal=5.0, step_size=0.1)
    h.load_state_dict(g.state_dict())
    assert g.update(4.0) == h.update(4.0)


def test_controllers_accept_torch_scalars():
    torch = pytest.importorskip("torch")
    assert PIController(3.0).update(torch.tensor(8.0)) == PIController(3.0).update(8.0)
    assert GECO(5.0, 0.1).update(torch.tensor(6.0)) == GECO(5.0, 0.1).update(6.0)


def test_no_jax_on_host_controller_path():
    import sys

    pi, g = PIController(3.0), GECO(5.0, 0.1)
    calls = []

    def profiler(frame, event, arg):
        module = frame.f_globals.get("__name__", "") if event == "call" else ""
        if event == "c_call":
            module = getattr(arg, "__module__", "") or ""
        if module.startswith(("jax", "jaxlib")):
            calls.append(module)

    sys.setprofile(profiler)
    try:
        for kl in range(100):
            pi.update(float(kl))
            g.update(float(kl))
    finally:
        sys.setprofile(None)
    assert calls == []


# ---- KL helpers ----------------------------------------------------------------------------


def test_gaussian_kl_and_per_dimension_against_numpy():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    expected = -0.5 * (1 + logvar - mu**2 - np.exp(logvar))
    np.testing.assert_allclose(
        gaussian_kl(jnp.asarray(mu), jnp.asarray(logvar)), expected.sum(-1), rtol=1e-5
    )
    np.testing.assert_allclose(
        kl_per_dimension(jnp.asarray(mu), jnp.asarray(logvar)), expected.mean(0), rtol=1e-5
    )
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(
        gaussian_kl(torch.tensor(mu), torch.tensor(logvar)).numpy(), expected.sum(-1), rtol=1e-10
    )


def test_free_bits_clamps_objective_only():
    kl = jnp.array([0.1, 2.0, 0.0, 0.6])
    assert float(free_bits(kl, 0.5)) == pytest.approx(0.5 + 2.0 + 0.5 + 0.6)
    assert float(free_bits(kl, 0.0)) == pytest.approx(float(kl.sum()))  # the unclamped bound
    # groups of 2: [2.1, 0.6] with lambda 1.0 -> 2.1 + 1.0
    assert float(free_bits(kl, 1.0, groups=2)) == pytest.approx(3.1)
    grads = jax.grad(lambda k: free_bits(k, 0.5))(kl)
    np.testing.assert_array_equal(np.asarray(grads), [0, 1, 0, 1])  # no gradient below lambda
    torch = pytest.importorskip("torch")
    assert float(free_bits(torch.tensor([0.1, 2.0, 0.0, 0.6]), 0.5)) == pytest.approx(3.6)


def test_free_bits_bad_arguments():
    with pytest.raises(ValueError, match="min_nats"):
        free_bits(jnp.ones(4), -1.0)
    with pytest.raises(ValueError, match="groups"):
        free_bits(jnp.ones(4), 0.5, groups=3)


def test_active_units_counts_varying_means():
    rng = np.random.default_rng(1)
    mu = np.stack([rng.normal(size=200), 0.01 * rng.normal(size=200), np.ones(200)], axis=1)
    assert int(active_units(jnp.asarray(mu))) == 1
    assert int(active_units(mu, threshold=1e-6)) == 2
    torch = pytest.importorskip("torch")
    assert int(active_units(torch.tensor(mu))) == 1
    with pytest.raises(ValueError, match="threshold"):
        active_units(mu, threshold=-1)


def test_capacity_schedule_and_objective():
    capacity = capacity_schedule(max_capacity=25.0, total_steps=100_000)
    assert float(capacity(50_000)) == pytest.approx(12.5)
    assert float(capacity(200_000)) == 25.0
    assert float(capacity_objective(10.0, capacity(50_000), gamma=1000.0)) == pytest.approx(2500)
    same = monotonic_schedule(100_000, "linear", 0.0, 25.0)
    assert float(capacity(12_345)) == float(same(12_345))
    with pytest.raises(ValueError, match="max_capacity"):
        capacity_schedule(-1.0, 10)
    with pytest.raises(ValueError, match="gamma"):
        capacity_objective(1.0, 0.0, gamma=math.nan)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"target_kl": -1.0}, "target_kl"),
        ({"target_kl": math.nan}, "target_kl"),
        ({"target_kl": 3.0, "k_p": -0.1}, "k_p"),
        ({"target_kl": 3.0, "k_i": "1e-4"}, "k_i"),
        ({"target_kl": 3.0, "beta_min": 1.0, "beta_max": 0.5}, "beta_max"),
    ],
)
def test_pi_bad_arguments(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        pi_controller(**kwargs)
    with pytest.raises((ValueError, TypeError), match=name):
        PIController(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"goal": math.inf, "step_size": 0.1}, "goal"),
        ({"goal": 1.0, "step_size": 0.0}, "step_size"),
        ({"goal": 1.0, "step_size": 0.1, "alpha": 1.0}, "alpha"),
        ({"goal": 1.0, "step_size": 0.1, "beta_min": 0.0}, "beta_min"),
        ({"goal": 1.0, "step_size": 0.1, "beta_init": 1e11}, "beta_init"),
    ],
)
def test_geco_bad_arguments(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        geco(**kwargs)
    with pytest.raises((ValueError, TypeError), match=name):
        GECO(**kwargs)


# ---- one rule for measured inputs, pure and host --------------------------------------------


@pytest.mark.parametrize("bad", [True, np.True_, jnp.asarray(False), "5", b"5", None, [1.0]])
@pytest.mark.parametrize(
    "pure,host",
    [
        (lambda: pi_controller(2.0), lambda: PIController(2.0)),
        (lambda: geco(1.0, 0.05), lambda: GECO(1.0, 0.05)),
    ],
    ids=["pi", "geco"],
)
def test_pure_and_host_updates_refuse_the_same_non_numbers(pure, host, bad):
    control = pure()
    with pytest.raises(TypeError, match=r"kl|recon_error"):
        control.update(control.init(), bad)
    with pytest.raises(TypeError, match=r"kl|recon_error"):
        jax.jit(control.update)(control.init(), bad)
    with pytest.raises(TypeError, match=r"kl|recon_error"):
        host().update(bad)


def test_pure_updates_take_numbers_and_0d_arrays_also_under_jit():
    control = pi_controller(3.0)
    betas = {
        float(update(control.init(), value).beta)
        for update in (control.update, jax.jit(control.update))
        for value in (8, 8.0, np.float32(8.0), np.int64(8), np.array(8.0), jnp.asarray(8.0))
    }
    expected = 0.01 / (1 + math.exp(-5.0)) + 1e-4 * 5.0  # P + I for error 3 - 8
    assert len(betas) == 1 and betas.pop() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("make", [lambda: PIController(3.0), lambda: GECO(5.0, 0.1)])
def test_a_tensor_with_grad_is_read_without_a_warning(make):
    torch = pytest.importorskip("torch")
    kl = torch.tensor(8.0, requires_grad=True) * 1.0  # warnings are errors in this suite
    assert make().update(kl) == make().update(8.0)


# ---- one state contract: settings and state, strict about settings ---------------------------


def test_pi_state_saved_with_other_settings_raises_or_is_adopted():
    """The reported case: a PIController(2, 0.01, 0.001)'s state loaded into a
    PIController(9, 0.5, 0.1) silently mixed the old integral with the new gains."""
    saved = PIController(target_kl=2.0, k_p=0.01, k_i=0.001)
    for kl in (6.0, 5.0, 4.0):
        saved.update(kl)
    other = PIController(target_kl=9.0, k_p=0.5, k_i=0.1)
    before = other.state_dict()
    with pytest.raises(ValueError, match=r"target_kl=2\.0.*k_p=0\.01.*k_i=0\.001") as caught:
        other.load_state_dict(saved.state_dict())
    assert "window" not in str(caught.value) and "strict=False" in str(caught.value)
    assert other.state_dict() == before  # nothing changed
    other.load_state_dict(saved.state_dict(), strict=False)
    assert other.state_dict() == saved.state_dict()
    assert repr(other) == repr(saved)
    expected = saved.update(3.0)
    assert other.update(3.0) == expected
    # what the old silent mix (the saved integral with the new gains) gives instead
    mixed = PIController(target_kl=9.0, k_p=0.5, k_i=0.1)
    mixed.load_state_dict({"beta": 0.0, "integral": saved.integral, "recent_kl": []})
    assert abs(mixed.update(3.0) - expected) > 1e-3


def test_geco_state_saved_with_other_settings_raises_or_is_adopted():
    saved = GECO(goal=1.0, step_size=0.05)
    for error in (2.0, 1.5):
        saved.update(error)
    other = GECO(goal=3.0, step_size=0.5, beta_init=2.0)
    with pytest.raises(ValueError, match=r"goal=1\.0.*step_size=0\.05.*beta_init=1\.0"):
        other.load_state_dict(saved.state_dict())
    other.load_state_dict(saved.state_dict(), strict=False)
    assert [other.update(e) for e in (1.2, 0.8)] == [saved.update(e) for e in (1.2, 0.8)]


def test_controller_state_dicts_hold_settings_and_state_and_old_ones_still_load():
    pi = PIController(target_kl=2.0, k_i=1e-2, window=2)
    pi.update(4.0)
    assert pi.state_dict() == {
        "target_kl": 2.0,
        "k_p": 0.01,
        "k_i": 0.01,
        "beta_min": 0.0,
        "beta_max": 1.0,
        "window": 2,
        "beta": pi.beta,
        "integral": pi.integral,
        "recent_kl": [4.0],
    }
    old = {"beta": pi.beta, "integral": pi.integral, "recent_kl": [4.0]}  # no settings
    twin = PIController(target_kl=2.0, k_i=1e-2, window=2)
    twin.load_state_dict(old)
    assert twin.state_dict() == pi.state_dict()
    g = GECO(goal=1.0, step_size=0.05)
    assert set(g.state_dict()) == {
        "goal", "step_size", "alpha", "beta_init", "beta_min", "beta_max",
        "beta", "error_ema", "num_updates",
    }  # fmt: skip
    with pytest.raises(ValueError, match="all the settings"):
        PIController(2.0).load_state_dict({"beta": 0.0, "integral": 0.0, "target_kl": 2.0})


def test_saved_settings_are_validated_before_anything_changes():
    pi = PIController(2.0)
    state = {**pi.state_dict(), "beta_max": -1.0}
    with pytest.raises(ValueError, match="beta_max"):
        pi.load_state_dict(state, strict=False)
    assert pi.state_dict() == PIController(2.0).state_dict()


# ---- PI on a moving average of the KL (DynamicVAE) ---------------------------------------


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


# ---- controllers' inputs and checkpoints -------------------------------------------------


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


# ---- KL balancing (NVAE) -----------------------------------------------------------------


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


@pytest.mark.slow
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


# ---- KL helpers: array in, same array out ------------------------------------------------


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


# ---- a 0-d number of any kind combines with an array of any kind -------------------------


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

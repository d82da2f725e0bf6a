"""Feedback controllers and KL regularisers: synthetic plants, bounds, bad input, host twins."""

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

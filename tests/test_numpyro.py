"""kl_schedules.numpyro.annealed in real NumPyro SVI, against hand-written log-densities."""

from __future__ import annotations

import math

import numpy as np
import pytest

numpyro = pytest.importorskip("numpyro")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro import handlers  # noqa: E402
from numpyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO  # noqa: E402
from numpyro.infer.autoguide import AutoNormal  # noqa: E402

from kl_schedules import ArgumentTypeError, cyclical_schedule  # noqa: E402
from kl_schedules.numpyro import annealed  # noqa: E402
from tests.reference import load_example  # noqa: E402

N, D = 5, 3
X = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32)
PARAMS = {
    "w": jnp.array([0.5, -1.0, 2.0]),
    "loc": jnp.linspace(-1.0, 1.0, N * D).reshape(N, D),
    "log_s": jnp.full((N, D), -0.7),
    "m_u": jnp.array(0.3),
}


def normal_logpdf(v, m, s):
    """log N(v; m, s^2), elementwise, in float64 NumPy (independent of NumPyro)."""
    v, m, s = (np.asarray(a, dtype=np.float64) for a in (v, m, s))
    return -0.5 * ((v - m) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)


def make(record, subsample_size=None):
    """A model with a global latent u, a local latent z per row and observed rows x; the
    guide writes the values it samples (and the subsample) into ``record``."""

    def model(x):
        w = numpyro.param("w", jnp.ones(D))
        u = numpyro.sample("u", dist.Normal(0.0, 1.0))
        with numpyro.plate("data", N, subsample_size=subsample_size):
            xb = numpyro.subsample(x, event_dim=1)
            z = numpyro.sample("z", dist.Normal(jnp.zeros(D), 1.0).to_event(1))
            numpyro.sample("x", dist.Normal(z * w + u, 1.0).to_event(1), obs=xb)

    def guide(x):
        loc = numpyro.param("loc", jnp.zeros((N, D)))
        log_s = numpyro.param("log_s", jnp.zeros((N, D)))
        m_u = numpyro.param("m_u", 0.0)
        record["u"] = numpyro.sample("u", dist.Normal(m_u, 0.5))
        with numpyro.plate("data", N, subsample_size=subsample_size) as idx:
            record["idx"] = idx
            loc, log_s = loc[idx], log_s[idx]
            record["z"] = numpyro.sample("z", dist.Normal(loc, jnp.exp(log_s)).to_event(1))

    return model, guide


def hand_elbo(record, beta):
    """recon + log p(u) - log q(u) + beta * (log p(z) - log q(z)), scaled by N / batch."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in PARAMS.items()}
    idx, z, u = np.asarray(record["idx"]), np.asarray(record["z"]), np.asarray(record["u"])
    recon = normal_logpdf(X[idx], z * p["w"] + u, 1.0).sum()
    kl_z = (normal_logpdf(z, p["loc"][idx], np.exp(p["log_s"][idx])) - normal_logpdf(z, 0, 1)).sum()
    scale = N / len(idx)
    u_terms = normal_logpdf(u, 0, 1) - normal_logpdf(u, p["m_u"], 0.5)
    return scale * (recon - beta * kl_z) + u_terms


@pytest.mark.slow
@pytest.mark.parametrize("subsample_size", [None, 2])
@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0, 2.5])
def test_annealed_elbo_equals_the_hand_computed_one_for_the_same_samples(beta, subsample_size):
    record = {}
    model, guide = make(record, subsample_size)
    loss = Trace_ELBO().loss(
        jax.random.PRNGKey(3),
        PARAMS,
        annealed(model, ["z"]),
        annealed(guide, ["z"]),
        X,
        beta=beta,
    )
    assert len(record["idx"]) == (subsample_size or N)
    np.testing.assert_allclose(-float(loss), hand_elbo(record, beta), rtol=1e-5)


def test_only_the_named_sites_are_scaled():
    record = {}
    model, guide = make(record)
    for fn in (model, guide):
        run = handlers.trace(handlers.seed(annealed(fn, ["z"]), 0)).get_trace(X, beta=0.25)
        assert run["z"]["scale"] == 0.25
        assert run["u"]["scale"] is None
        if "x" in run:
            assert run["x"]["scale"] is None


def test_scales_compose_with_a_subsampled_plate():
    model, _ = make({}, subsample_size=2)
    run = handlers.trace(handlers.seed(annealed(model, ["z"]), 0)).get_trace(X, beta=0.25)
    np.testing.assert_allclose(run["z"]["scale"], 0.25 * N / 2)
    np.testing.assert_allclose(run["x"]["scale"], N / 2)


@pytest.mark.slow
def test_jitted_update_traces_once_and_uses_each_steps_beta():
    model, guide = make({})
    model, guide = annealed(model, ["z"]), annealed(guide, ["z"])
    svi = SVI(model, guide, numpyro.optim.Adam(0.05), Trace_ELBO())
    state = jax.jit(svi.init)(jax.random.PRNGKey(0), X, beta=0.0)
    traces = []

    def update(state, x, beta):
        traces.append(beta)  # runs only while tracing
        return svi.update(state, x, beta=beta)

    jitted = jax.jit(update)
    schedule = cyclical_schedule(period=3, ratio=1.0)  # 0, 1/3, 2/3, 0
    for step in range(4):
        beta = schedule(step)
        # the loss the step reports is the ELBO at its beta: recomputed eagerly with the
        # key the step uses (SVI.update splits the state's key and uses the second half)
        params, key = svi.get_params(state), jax.random.split(state.rng_key)[1]
        expected = Trace_ELBO().loss(key, params, model, guide, X, beta=float(beta))
        state, loss = jitted(state, X, beta)
        np.testing.assert_allclose(float(loss), float(expected), rtol=1e-5)
    assert len(traces) == 1  # one trace for four steps of different betas, 0 included
    # and beta matters: at beta = 1 the same step reports another loss
    assert float(jitted(state, X, jnp.float32(1.0))[1]) != float(jitted(state, X, beta)[1])
    assert len(traces) == 1


@pytest.mark.slow
def test_beta_zero_trains_and_ignores_the_kl():
    model, guide = make({})
    svi = SVI(
        annealed(model, ["z"]), annealed(guide, ["z"]), numpyro.optim.Adam(0.05), Trace_ELBO()
    )
    state = svi.init(jax.random.PRNGKey(1), X, beta=0.0)
    before = svi.get_params(state)
    state, loss = svi.update(state, X, beta=0.0)
    assert math.isfinite(float(loss))
    after = svi.get_params(state)
    assert all(np.all(np.isfinite(v)) for v in after.values())
    assert not np.allclose(before["loc"], after["loc"])

    # With z out of the objective, the gradient wrt the guide's scale of z only comes
    # through the reconstruction (the entropy term is gone): compare with the hand ELBO.
    def loss_at(log_s, beta):
        params = {**PARAMS, "log_s": log_s}
        return Trace_ELBO().loss(
            jax.random.PRNGKey(2), params, annealed(model, ["z"]), annealed(guide, ["z"]), X,
            beta=beta,
        )  # fmt: skip

    grad0 = jax.grad(loss_at)(PARAMS["log_s"], 0.0)
    assert np.all(np.isfinite(grad0))
    grad1 = jax.grad(loss_at)(PARAMS["log_s"], 1.0)
    assert not np.allclose(grad0, grad1)


def test_mean_field_elbo_scales_the_analytic_kl():
    model, guide = make({})
    model, guide = annealed(model, ["z"]), annealed(guide, ["z"])
    key = jax.random.PRNGKey(4)

    def loss(beta):
        return float(TraceMeanField_ELBO().loss(key, PARAMS, model, guide, X, beta=beta))

    s = np.exp(np.float64(-0.7))
    loc = np.asarray(PARAMS["loc"], dtype=np.float64)
    kl = (0.5 * (s**2 + loc**2 - 1) - math.log(s)).sum()  # KL(N(loc, s) || N(0, 1)), closed form
    np.testing.assert_allclose(loss(0.7) - loss(0.0), 0.7 * kl, rtol=1e-4)


@pytest.mark.slow
def test_works_with_an_autoguide_of_the_plain_model():
    plain, _ = make({})
    model, guide = annealed(plain, ["z"]), annealed(AutoNormal(plain), ["z"])
    svi = SVI(model, guide, numpyro.optim.Adam(0.05), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0), X, beta=0.0)
    key = jax.random.PRNGKey(5)
    params = svi.get_params(state)
    losses = [float(Trace_ELBO().loss(key, params, model, guide, X, beta=b)) for b in (0, 0.5, 1)]
    # the same samples at every beta: the loss is affine in beta, and beta matters
    np.testing.assert_allclose(losses[1], (losses[0] + losses[2]) / 2, rtol=1e-5)
    assert losses[0] != losses[2]


def test_a_site_that_never_runs_raises_naming_it():
    model, guide = make({})
    svi = SVI(
        annealed(model, ["zz"]), annealed(guide, ["z"]), numpyro.optim.Adam(0.1), Trace_ELBO()
    )
    with pytest.raises(ValueError, match=r"\['zz'\].*sites that ran are \['u', 'z', 'x'\]"):
        svi.init(jax.random.PRNGKey(0), X, beta=0.5)
    with pytest.raises(ValueError, match="zz"):  # under jit too (names are static)
        jax.jit(lambda: handlers.seed(annealed(model, ["zz"]), 0)(X, beta=0.5))()


@pytest.mark.parametrize(
    ("sites", "error", "match"),
    [
        ("z", ArgumentTypeError, r"string 'z'; pass \['z'\]"),
        ([], ValueError, "at least one"),
        ({"z"}, ArgumentTypeError, "sequence"),
        (None, ArgumentTypeError, "sequence"),
        (["z", 1], ArgumentTypeError, "int: 1"),
        ([""], ArgumentTypeError, "non-empty strings"),
        (["z", "u", "z"], ValueError, r"distinct.*\['z'\]"),
    ],
)
def test_bad_sites_raise_naming_the_argument(sites, error, match):
    model, _ = make({})
    with pytest.raises(error, match=f"sites.*{match}"):
        annealed(model, sites)


def test_fn_must_be_callable():
    with pytest.raises(ArgumentTypeError, match=r"fn must be a callable.*str"):
        annealed("model", ["z"])


@pytest.mark.parametrize(
    ("beta", "error", "match"),
    [
        (-0.1, ValueError, r"beta must be a finite number in \[0.0, inf\], got -0.1"),
        (math.nan, ValueError, "beta must be a finite number"),
        (math.inf, ValueError, "beta must be a finite number"),
        ("0.5", ArgumentTypeError, "beta must be a real number, got str"),
        (True, ArgumentTypeError, "beta must be a real number, got bool"),
        (np.ones(2), ArgumentTypeError, "beta must be a real number"),
        (jnp.array(-1.0), ValueError, "beta must be a finite number"),
    ],
)
def test_bad_beta_raises(beta, error, match):
    model, _ = make({})
    with pytest.raises(error, match=match):
        handlers.seed(annealed(model, ["z"]), 0)(X, beta=beta)


@pytest.mark.parametrize("beta", [0, 0.5, np.float32(0.5), np.array(0.5), jnp.array(0.5)])
def test_numbers_and_0d_arrays_are_accepted(beta):
    model, _ = make({})
    run = handlers.trace(handlers.seed(annealed(model, ["z"]), 0)).get_trace(X, beta=beta)
    assert float(run["z"]["scale"]) == float(beta)


def test_a_traced_beta_must_be_a_0d_real_array():
    model, _ = make({})
    seeded = handlers.seed(annealed(model, ["z"]), 0)
    with pytest.raises(ArgumentTypeError, match=r"traced array of shape \(2,\)"):
        jax.jit(lambda b: seeded(X, beta=b))(jnp.ones(2))
    with pytest.raises(ArgumentTypeError, match="dtype bool"):
        jax.jit(lambda b: seeded(X, beta=b))(jnp.array(True))


def test_missing_beta_raises_naming_it():
    model, _ = make({})
    with pytest.raises(TypeError, match=r"model was wrapped by annealed.*keyword argument beta"):
        handlers.seed(annealed(model, ["z"]), 0)(X)


@pytest.mark.slow
def test_numpyro_vae_example_quick_run_follows_the_cyclical_schedule():
    pytest.importorskip("sklearn")
    example = load_example("numpyro_vae")
    result = example.main(["--steps", "12"])
    # period 12 / 4 = 3, ratio 0.5: tau = (t mod 3) / 3, beta = min(tau / 0.5, 1)
    expected = [min((t % 3) / 3 / 0.5, 1.0) for t in range(12)]
    np.testing.assert_allclose([row["beta"] for row in result["log"]], expected, atol=1e-6)
    assert result["traces"] == 1  # twelve betas, one trace of the jitted step
    assert all(math.isfinite(row["loss"]) for row in result["log"])
    final = result["final"]
    assert final["kl"] > 0 and final["recon"] > 0
    assert final["neg_elbo"] < result["log"][0]["loss"]  # it trained
    monotonic = example.make_schedule("monotonic", 8)  # over half the run
    np.testing.assert_allclose(
        [float(monotonic(t)) for t in range(8)], [0, 0.25, 0.5, 0.75, 1, 1, 1, 1]
    )

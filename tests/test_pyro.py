"""kl_schedules.pyro.annealed in real Pyro SVI, against hand-written log-densities."""

from __future__ import annotations

import math

import numpy as np
import pytest

pyro = pytest.importorskip("pyro")

import pyro.distributions as dist  # noqa: E402
import torch  # noqa: E402
from pyro import poutine  # noqa: E402
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO  # noqa: E402
from pyro.infer.autoguide import AutoNormal  # noqa: E402
from pyro.poutine.messenger import Messenger  # noqa: E402

from kl_schedules import Annealer, ArgumentTypeError  # noqa: E402
from kl_schedules.pyro import annealed  # noqa: E402

N, D = 5, 3
X = torch.tensor(np.random.default_rng(0).normal(size=(N, D)), dtype=torch.float32)
PARAMS = {
    "w": torch.tensor([0.5, -1.0, 2.0]),
    "loc": torch.linspace(-1.0, 1.0, N * D).reshape(N, D),
    "log_s": torch.full((N, D), -0.7),
    "m_u": torch.tensor(0.3),
}


@pytest.fixture(autouse=True)
def fresh_param_store():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


def normal_logpdf(v, m, s):
    """log N(v; m, s^2), elementwise, in float64 NumPy (independent of Pyro)."""
    v, m, s = (np.asarray(a, dtype=np.float64) for a in (v, m, s))
    return -0.5 * ((v - m) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)


def make(record, subsample_size=None):
    """A model with a global latent u, a local latent z per row and observed rows x; the
    guide writes the values it samples (and the subsample) into ``record``."""

    def model(x):
        w = pyro.param("w", PARAMS["w"].clone())
        u = pyro.sample("u", dist.Normal(0.0, 1.0))
        with pyro.plate("data", N, subsample_size=subsample_size) as idx:
            z = pyro.sample("z", dist.Normal(torch.zeros(D), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z * w + u, 1.0).to_event(1), obs=x[idx])

    def guide(x):
        loc = pyro.param("loc", PARAMS["loc"].clone())
        log_s = pyro.param("log_s", PARAMS["log_s"].clone())
        m_u = pyro.param("m_u", PARAMS["m_u"].clone())
        record["u"] = pyro.sample("u", dist.Normal(m_u, 0.5)).detach()
        with pyro.plate("data", N, subsample_size=subsample_size) as idx:
            record["idx"] = idx
            z = pyro.sample("z", dist.Normal(loc[idx], log_s[idx].exp()).to_event(1))
            record["z"] = z.detach()

    return model, guide


def hand_elbo(record, beta):
    """recon + log p(u) - log q(u) + beta * (log p(z) - log q(z)), scaled by N / batch."""
    p = {k: v.double().numpy() for k, v in PARAMS.items()}
    idx, z, u = record["idx"].numpy(), record["z"].double().numpy(), record["u"].item()
    recon = normal_logpdf(X.double().numpy()[idx], z * p["w"] + u, 1.0).sum()
    kl_z = (normal_logpdf(z, p["loc"][idx], np.exp(p["log_s"][idx])) - normal_logpdf(z, 0, 1)).sum()
    scale = N / len(idx)
    u_terms = normal_logpdf(u, 0, 1) - normal_logpdf(u, p["m_u"], 0.5)
    return scale * (recon - float(beta) * kl_z) + u_terms


@pytest.mark.parametrize("subsample_size", [None, 2])
@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0, 2.5, torch.tensor(0.7)])
def test_annealed_elbo_equals_the_hand_computed_one_for_the_same_samples(beta, subsample_size):
    record = {}
    model, guide = make(record, subsample_size)
    loss = Trace_ELBO().loss(annealed(model, ["z"]), annealed(guide, ["z"]), X, beta=beta)
    assert len(record["idx"]) == (subsample_size or N)
    np.testing.assert_allclose(-loss, hand_elbo(record, beta), rtol=1e-5)


def test_only_the_named_sites_are_scaled():
    model, guide = make({})
    guide_run = poutine.trace(annealed(guide, ["z"])).get_trace(X, beta=0.25)
    model_run = poutine.trace(poutine.replay(annealed(model, ["z"]), guide_run)).get_trace(
        X, beta=0.25
    )
    for run in (guide_run, model_run):
        assert run.nodes["z"]["scale"] == 0.25
        assert run.nodes["u"]["scale"] == 1.0
    assert model_run.nodes["x"]["scale"] == 1.0


def test_scales_compose_with_a_subsampled_plate():
    model, _ = make({}, subsample_size=2)
    run = poutine.trace(annealed(model, ["z"])).get_trace(X, beta=0.25)
    assert run.nodes["z"]["scale"] == pytest.approx(0.25 * N / 2)
    assert run.nodes["x"]["scale"] == pytest.approx(N / 2)


class ScaleSpy(Messenger):
    """Records the final scale of the site ``name`` each time it runs."""

    def __init__(self, name):
        super().__init__()
        self.name, self.scales = name, []

    def _pyro_post_sample(self, msg):
        if msg["name"] == self.name:
            self.scales.append(float(msg["scale"]))


def test_the_host_annealer_drives_beta_in_svi():
    model, guide = make({})
    model, guide = annealed(model, ["z"]), annealed(guide, ["z"])
    spy = ScaleSpy("z")

    def spied_guide(x, beta):
        with spy:
            return guide(x, beta=beta)

    annealer = Annealer(total_steps=4)
    svi = SVI(model, spied_guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    losses = []
    for _ in range(6):
        losses.append(svi.step(X, beta=annealer.beta))
        annealer.step()
    assert spy.scales == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]  # the beta each step used
    assert all(math.isfinite(loss) for loss in losses)
    assert torch.isfinite(pyro.param("loc")).all()
    assert not torch.equal(pyro.param("loc").detach(), PARAMS["loc"])


def test_beta_zero_trains_where_poutine_scale_refuses():
    with pytest.raises(ValueError, match="scale > 0"):
        poutine.scale(scale=0.0)
    model, guide = make({})
    svi = SVI(
        annealed(model, ["z"]), annealed(guide, ["z"]), pyro.optim.Adam({"lr": 0.05}), Trace_ELBO()
    )
    assert math.isfinite(svi.step(X, beta=0.0))
    assert torch.isfinite(pyro.param("log_s")).all()


def test_beta_zero_removes_the_kl_gradient():
    """At beta = 0 the guide's scale of z gets gradient only through the reconstruction."""

    def grad_log_s(beta):
        pyro.clear_param_store()
        pyro.set_rng_seed(7)
        model, guide = make({})
        loss = Trace_ELBO().differentiable_loss(
            annealed(model, ["z"]), annealed(guide, ["z"]), X, beta=beta
        )
        (grad,) = torch.autograd.grad(loss, [pyro.param("log_s").unconstrained()])
        return grad

    g0, g1 = grad_log_s(0.0), grad_log_s(1.0)
    assert torch.isfinite(g0).all()
    # KL part of d(-ELBO)/d log_s for the same sample: d/dlog_s (log q(z) - log p(z))
    assert not torch.allclose(g0, g1)


def test_mean_field_elbo_scales_the_analytic_kl():
    model, guide = make({})
    model, guide = annealed(model, ["z"]), annealed(guide, ["z"])

    def loss(beta):
        pyro.set_rng_seed(4)
        return TraceMeanField_ELBO().loss(model, guide, X, beta=beta)

    s = math.exp(-0.7)
    loc = PARAMS["loc"].double().numpy()
    kl = (0.5 * (s**2 + loc**2 - 1) - math.log(s)).sum()  # KL(N(loc, s) || N(0, 1)), closed form
    np.testing.assert_allclose(loss(0.7) - loss(0.0), 0.7 * kl, rtol=1e-4)


def test_works_with_an_autoguide_of_the_plain_model():
    plain, _ = make({})
    model, guide = annealed(plain, ["z"]), annealed(AutoNormal(plain), ["z"])

    def loss(beta):
        pyro.set_rng_seed(5)
        return Trace_ELBO().loss(model, guide, X, beta=beta)

    loss(1.0)  # the first call sets the autoguide up (drawing its initial values)
    losses = [loss(b) for b in (0.0, 0.5, 1.0)]
    # the same samples at every beta: the loss is affine in beta, and beta matters
    np.testing.assert_allclose(losses[1], (losses[0] + losses[2]) / 2, rtol=1e-5)
    assert losses[0] != losses[2]


def test_a_site_that_never_runs_raises_naming_it():
    model, guide = make({})
    svi = SVI(annealed(model, ["zz"]), annealed(guide, ["z"]), pyro.optim.Adam({}), Trace_ELBO())
    with pytest.raises(ValueError, match=r"\['zz'\].*sites that ran are \['u', 'data', 'z', 'x'\]"):
        svi.step(X, beta=0.5)


@pytest.mark.parametrize(
    ("sites", "error", "match"),
    [
        ("z", ArgumentTypeError, r"string 'z'; pass \['z'\]"),
        ([], ValueError, "at least one"),
        ({"z"}, ArgumentTypeError, "sequence"),
        (["z", 1], ArgumentTypeError, "int: 1"),
        (["z", "z"], ValueError, "distinct"),
    ],
)
def test_bad_sites_raise_naming_the_argument(sites, error, match):
    model, _ = make({})
    with pytest.raises(error, match=f"sites.*{match}"):
        annealed(model, sites)


def test_fn_must_be_callable():
    with pytest.raises(ArgumentTypeError, match="fn must be a callable"):
        annealed(None, ["z"])


@pytest.mark.parametrize(
    ("beta", "error", "match"),
    [
        (-0.1, ValueError, r"beta must be a finite number in \[0.0, inf\], got -0.1"),
        (math.nan, ValueError, "beta must be a finite number"),
        (math.inf, ValueError, "beta must be a finite number"),
        ("0.5", ArgumentTypeError, "beta must be a real number, got str"),
        (True, ArgumentTypeError, "beta must be a real number, got bool"),
        (torch.ones(2), ArgumentTypeError, r"0-d real tensor, got a tensor of shape \(2,\)"),
        (torch.tensor(True), ArgumentTypeError, "dtype torch.bool"),
        (torch.tensor(-1.0), ValueError, "beta must be a finite number"),
        (torch.tensor(math.nan), ValueError, "beta must be a finite number"),
    ],
)
def test_bad_beta_raises(beta, error, match):
    model, _ = make({})
    with pytest.raises(error, match=match):
        annealed(model, ["z"])(X, beta=beta)


@pytest.mark.parametrize("beta", [0, 0.5, np.float32(0.5), torch.tensor(0.5, dtype=torch.float64)])
def test_numbers_and_0d_tensors_are_accepted(beta):
    model, _ = make({})
    run = poutine.trace(annealed(model, ["z"])).get_trace(X, beta=beta)
    assert float(run.nodes["z"]["scale"]) == float(beta)
    run.compute_log_prob()
    assert run.nodes["z"]["log_prob"].dtype == torch.float32  # a float64 beta does not promote


def test_missing_beta_raises_naming_it():
    model, _ = make({})
    with pytest.raises(TypeError, match=r"model was wrapped by annealed.*keyword argument beta"):
        annealed(model, ["z"])(X)

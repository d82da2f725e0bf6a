"""VAELoss against hand-written formulas; autocast, extreme logvar, shape errors, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kl_schedules.torch import Annealer, VAELoss  # noqa: E402


def reference_terms(x, x0, mu, logvar):
    x, x0, mu, logvar = (np.asarray(a, dtype=np.float64) for a in (x, x0, mu, logvar))
    bce = -(x0 * np.log(x) + (1 - x0) * np.log(1 - x))
    recon = bce.reshape(len(x), -1).sum(axis=1)
    kld = -0.5 * (1 + logvar - mu**2 - np.exp(logvar)).sum(axis=1)
    return recon, kld


def random_batch(seed=0, batch=5, features=(3, 4), latent=6):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *features, generator=gen) * 0.98 + 0.01
    x0 = (torch.rand(batch, *features, generator=gen) > 0.5).float()
    mu = torch.randn(batch, latent, generator=gen)
    logvar = torch.randn(batch, latent, generator=gen)
    return x, x0, mu, logvar


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_reference(reduction):
    x, x0, mu, logvar = random_batch()
    recon, kld = VAELoss(reduction=reduction)(x, x0, mu, logvar)
    ref_recon, ref_kld = reference_terms(x, x0, mu, logvar)
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction]
    np.testing.assert_allclose(recon.detach().numpy(), reduce(ref_recon), rtol=1e-5)
    np.testing.assert_allclose(kld.detach().numpy(), reduce(ref_kld), rtol=1e-5)
    if reduction != "none":
        assert recon.ndim == 0 and kld.ndim == 0


def test_argument_order_is_reconstruction_then_input():
    # With x0 binary and x soft, swapping arguments gives a different (wrong) number.
    x0 = torch.tensor([[1.0, 0.0]])
    x = torch.tensor([[0.9, 0.2]])
    recon, _ = VAELoss()(x, x0, torch.zeros(1, 1), torch.zeros(1, 1))
    assert recon.item() == pytest.approx(-math.log(0.9) - math.log(0.8), rel=1e-6)


def test_from_logits_equals_probabilities():
    x, x0, mu, logvar = random_batch(1)
    logits = torch.logit(x)
    a = VAELoss()(x, x0, mu, logvar)
    b = VAELoss(from_logits=True)(logits, x0, mu, logvar)
    for u, v in zip(a, b, strict=True):
        assert u.item() == pytest.approx(v.item(), rel=1e-5)


def test_from_logits_stable_for_huge_logits():
    x0 = torch.tensor([[1.0, 0.0]])
    recon, _ = VAELoss(from_logits=True)(
        torch.tensor([[200.0, -200.0]]), x0, torch.zeros(1, 1), torch.zeros(1, 1)
    )
    assert torch.isfinite(recon) and recon.item() == pytest.approx(0.0, abs=1e-6)


def test_finite_for_extreme_logvar_and_gradients_flow():
    x, x0, _, _ = random_batch(2, latent=2)
    x = x.clone().requires_grad_(True)
    mu = torch.zeros(5, 2, requires_grad=True)
    logvar = torch.tensor([[-30.0, 30.0]] * 5, requires_grad=True)
    recon, kld = VAELoss()(x, x0, mu, logvar)
    annealer = Annealer(10)
    annealer.step()
    loss = recon + annealer(kld)
    assert torch.isfinite(loss)
    loss.backward()
    for tensor in (x, mu, logvar):
        assert tensor.grad is not None and torch.all(torch.isfinite(tensor.grad))
    assert logvar.grad.abs().sum() > 0


def test_runs_under_autocast_in_float32():
    x, x0, mu, logvar = random_batch(3)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        recon, kld = VAELoss()(x.bfloat16(), x0, mu.bfloat16(), logvar.bfloat16())
    assert recon.dtype == torch.float32 and kld.dtype == torch.float32
    assert torch.isfinite(recon) and torch.isfinite(kld)


def test_shape_mismatch_errors():
    x, x0, mu, logvar = random_batch()
    with pytest.raises(ValueError, match=r"x .*x0"):
        VAELoss()(x, x0[:, :2], mu, logvar)
    with pytest.raises(ValueError, match="mu and logvar"):
        VAELoss()(x, x0, mu, logvar[:, :3])
    with pytest.raises(ValueError, match="batch"):
        VAELoss()(x, x0, mu[:2], logvar[:2])


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="reduction"):
        VAELoss(reduction="avg")
    with pytest.raises(TypeError, match="from_logits"):
        VAELoss(from_logits=1)


@pytest.mark.parametrize("from_logits", [False, True])
def test_float64_inputs_give_float64_terms_and_pass_gradcheck(from_logits):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 5, generator=generator, dtype=torch.float64) * 0.8 + 0.1
    x0 = torch.rand(3, 5, generator=generator, dtype=torch.float64)
    mu = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    logvar = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    criterion = VAELoss(from_logits=from_logits)
    recon, kld = criterion(x, x0, mu, logvar)
    assert recon.dtype == kld.dtype == torch.float64
    inputs = tuple(t.clone().requires_grad_() for t in (x, mu, logvar))
    assert torch.autograd.gradcheck(
        lambda x, mu, logvar: criterion(x, x0, mu, logvar), inputs, eps=1e-6, atol=1e-7
    )


def test_half_precision_inputs_still_give_float32_terms():
    half = [torch.full((2, 3), 0.5, dtype=torch.bfloat16), torch.ones(2, 3, dtype=torch.float16)]
    recon, kld = VAELoss()(*half, torch.zeros(2, 2, dtype=torch.float16), torch.zeros(2, 2))
    assert recon.dtype == kld.dtype == torch.float32

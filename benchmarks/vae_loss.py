"""``kl_schedules.torch.VAELoss`` against the same loss written by hand in torch (BCE summed
per sample plus the Gaussian KL, both averaged over the batch), forward and
forward + backward, at the README loop's size (batch 32, 64 features, latent 4) and at the
MLP-VAE's (128, 784, 32); and the README's whole train step (model, loss, backward, Adam)
with each loss. Target: ratio <= 1.2 for the loss alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from _harness import interleaved, median, paired_ratio, synchronize, torch_device

NAME = "vae_loss"
SIZES = {
    "full": {"calls": 2000, "repeats": 21},
    "quick": {"calls": 500, "repeats": 9},
    "tiny": {"calls": 5, "repeats": 2},
}
SHAPES = {"readme": (32, 64, 4), "mlp": (128, 784, 32)}  # batch, features, latent
CALLS_DIVISOR = {"readme": 1, "mlp": 20}  # the MLP's loss is ~100x the work per call


def by_hand(x: Any, x0: Any, mu: Any, logvar: Any) -> tuple[Any, Any]:
    """The baseline: ``VAELoss()``'s two terms (probabilities in, mean over the batch of
    per-sample sums), as one would write them inline."""
    import torch.nn.functional as F

    recon = F.binary_cross_entropy(x, x0, reduction="none").sum(dim=1).mean()
    kld = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
    return recon, kld


def loss_inputs(shape: tuple[int, int, int], device: str, grad: bool) -> tuple[Any, ...]:
    """``(x, x0, mu, logvar)``: probabilities, binary data, and a posterior, float32."""
    import torch

    batch, features, latent = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, features, generator=gen).clamp(0.01, 0.99)
    x0 = (torch.rand(batch, features, generator=gen) < 0.3).float()
    mu, logvar = torch.randn(2, batch, latent, generator=gen).unbind(0)
    leaves = [t.to(device).requires_grad_(grad and t is not x0) for t in (x, x0, mu, logvar)]
    return tuple(leaves)


def _timer(call: Callable[[], Any], calls: int, device: str) -> Callable[[], float]:
    def run_once() -> float:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(calls):
            call()
        synchronize(device)
        return (time.perf_counter() - start) / calls

    return run_once


def _readme_step(loss_fn: Callable[..., Any], device: str) -> Callable[[], None]:
    """One step of the README's PyTorch loop (linear encoder and decoder, Adam) with
    ``loss_fn`` as the criterion; every loss starts from the same model."""
    import torch

    torch.manual_seed(0)
    enc, dec = torch.nn.Linear(64, 2 * 4).to(device), torch.nn.Linear(4, 64).to(device)
    optimizer = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    x0 = torch.rand(32, 64, generator=torch.Generator().manual_seed(1)).to(device)

    def step() -> None:
        mu, logvar = enc(x0).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon, kld = loss_fn(torch.sigmoid(dec(z)), x0, mu, logvar)
        optimizer.zero_grad()
        (recon + kld).backward()
        optimizer.step()

    return step


def run(mode: str) -> dict[str, Any]:
    import torch

    from kl_schedules.torch import VAELoss

    device, size = torch_device(), SIZES[mode]
    losses = {"ours": VAELoss(), "by_hand": by_hand}
    results: dict[str, Any] = {}

    def record(
        key: str, calls: dict[str, Callable[[], Any]], what: str, target: str, divisor: int = 1
    ) -> None:
        for call in calls.values():  # warm up (allocator, autograd, CUDA context)
            call()
        count = max(1, size["calls"] // divisor)
        timers = {name: _timer(call, count, device) for name, call in calls.items()}
        samples = interleaved(timers, size["repeats"])
        ours, base = median(samples["ours"]), median(samples["by_hand"])
        results[f"{NAME}/{key}"] = {
            "ratio": paired_ratio(samples, "ours", "by_hand"),
            "baseline": f"the same loss written by hand in torch; {what}",
            "us_per_call": ours * 1e6,
            "baseline_us_per_call": base * 1e6,
            "overhead_us": (ours - base) * 1e6,
            "device": device,
            "target": target,
        }

    for shape_name, shape in SHAPES.items():
        args = loss_inputs(shape, device, grad=False)
        expected, got = by_hand(*args), losses["ours"](*args)
        for a, b in zip(expected, got, strict=True):  # the baseline is the same loss
            torch.testing.assert_close(a, b)
        prefix = "" if shape_name == "readme" else f"{shape_name}_"
        dims = "batch {}, {} features, latent {}".format(*shape)
        record(
            f"{prefix}forward",
            {name: (lambda f=f, a=args: f(*a)) for name, f in losses.items()},
            f"forward only ({dims})",
            "<= 1.2",
            CALLS_DIVISOR[shape_name],
        )
        grad_args = loss_inputs(shape, device, grad=True)

        def forward_backward(f: Callable[..., Any], a: tuple[Any, ...] = grad_args) -> None:
            recon, kld = f(*a)
            (recon + kld).backward()

        record(
            f"{prefix}forward_backward",
            {name: (lambda f=f: forward_backward(f)) for name, f in losses.items()},
            f"forward + backward ({dims})",
            "<= 1.2",
            CALLS_DIVISOR[shape_name],
        )
    record(
        "readme_train_step",
        {name: _readme_step(f, device) for name, f in losses.items()},
        "the README's whole train step (model, loss, backward, Adam) with each",
        "-",
    )
    return results

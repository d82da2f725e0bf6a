"""PyTorch adapter: the ``Annealer`` and a ``VAELoss`` with both terms on one scale.

Importing this module imports torch; ``import kl_schedules`` does not. (``torch.load``
rebuilds whole ``Annealer``, ``PIController`` and ``GECO`` objects with its default
``weights_only=True`` whether or not this module is imported.)
"""

from __future__ import annotations

import contextlib
from typing import Any

from kl_schedules._extras import CPU_TORCH, requires_extra

with requires_extra("kl_schedules.torch", "PyTorch", "torch", note=CPU_TORCH):
    import torch
import torch.nn.functional as F
from torch import nn

from kl_schedules._annealer import Annealer
from kl_schedules._validation import check_bool, check_choice
from kl_schedules.control import gaussian_kl

__all__ = ["Annealer", "VAELoss", "gaussian_kl"]

_REDUCTIONS = ("mean", "sum", "none")


class VAELoss(nn.Module):
    r"""Bernoulli reconstruction and Gaussian KL terms of a VAE, each summed per sample.

    ``forward(x, x0, mu, logvar) -> (recon, kld)`` with ``x`` the reconstruction (probabilities,
    or logits when ``from_logits=True``) and ``x0`` the input in [0, 1]:

    .. math::
        \mathrm{recon}_i &= \sum_d \mathrm{BCE}(x_{id}, x^0_{id}) \\
        \mathrm{kld}_i &= -\tfrac12 \sum_j (1 + \log\sigma^2_{ij} - \mu_{ij}^2 - \sigma^2_{ij})

    then the mean (default) or sum over the batch, so ``recon + beta * kld`` is the negative
    ELBO at ``beta = 1``. Both are computed in the inputs' floating dtype, at least float32:
    float64 inputs give float64 terms; float16 and bfloat16 inputs (and ``torch.autocast``)
    give float32 terms.

    Differences from the ``vae-annealing`` original: the arguments of the BCE are not swapped (the
    original passed the data as the prediction), and the reconstruction is summed over
    features rather than averaged, so it is on the KL's per-sample scale (the original's
    per-element mean implied a beta of about the number of pixels).

    Args:
      reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for per-sample terms.
      from_logits: ``x`` holds logits; use the stable ``binary_cross_entropy_with_logits``.

    Examples:
      >>> import torch
      >>> from kl_schedules.torch import Annealer, VAELoss
      >>> criterion, annealer = VAELoss(), Annealer(total_steps=10)
      >>> x0 = torch.ones(4, 6)
      >>> recon, kld = criterion(torch.full((4, 6), 0.5), x0, torch.zeros(4, 2), torch.zeros(4, 2))
      >>> round(recon.item(), 4), kld.item()
      (4.1589, 0.0)
      >>> loss = recon + annealer(kld)
    """

    def __init__(self, reduction: str = "mean", from_logits: bool = False) -> None:
        super().__init__()
        self.reduction = check_choice("reduction", reduction, _REDUCTIONS)
        self.from_logits = check_bool("from_logits", from_logits)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, from_logits={self.from_logits}"

    def forward(
        self, x: torch.Tensor, x0: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape != x0.shape:
            raise ValueError(
                f"x (reconstruction) and x0 (input) must have the same shape, "
                f"got {tuple(x.shape)} and {tuple(x0.shape)}"
            )
        if mu.shape != logvar.shape:
            raise ValueError(
                f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
                f"{tuple(logvar.shape)}"
            )
        if x.ndim < 1 or mu.ndim < 1 or x.shape[0] != mu.shape[0]:
            raise ValueError(
                f"x and mu must share the batch dimension, got {tuple(x.shape)} and "
                f"{tuple(mu.shape)}"
            )
        dtype = _compute_dtype(x, x0, mu, logvar)
        # autocast is switched off inside (BCE refuses to run under it), but only entered
        # when on: the context costs more than the loss at small sizes.
        with _autocast_off(x.device.type):
            x, x0, mu, logvar = (_as_dtype(t, dtype) for t in (x, x0, mu, logvar))
            if self.from_logits:
                bce = F.binary_cross_entropy_with_logits(x, x0, reduction="none")
            else:
                bce = F.binary_cross_entropy(x, x0, reduction="none")
            recon = _sum_per_sample(bce)
            kld = gaussian_kl(_flat_per_sample(mu), _flat_per_sample(logvar))
        if self.reduction == "mean":
            return recon.mean(), kld.mean()
        if self.reduction == "sum":
            return recon.sum(), kld.sum()
        return recon, kld


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (half precisions are raised to it)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _as_dtype(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _autocast_off(device_type: str) -> Any:
    """A context that switches autocast off for ``device_type`` if it is on, else nothing."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _flat_per_sample(tensor: torch.Tensor) -> torch.Tensor:
    """``[batch, features]``: the tensor itself when it has two axes."""
    if tensor.ndim == 2:
        return tensor
    return tensor.unsqueeze(1) if tensor.ndim == 1 else tensor.flatten(1)


def _sum_per_sample(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over every axis but the first (batch) one."""
    if tensor.ndim == 1:
        return tensor
    return tensor.sum(dim=1) if tensor.ndim == 2 else tensor.flatten(1).sum(dim=1)

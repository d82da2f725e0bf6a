"""Pyro adapter: anneal the KL term of an ELBO by scaling chosen sample sites by beta.

Importing this module imports pyro (and torch); ``import kl_schedules`` does not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kl_schedules._extras import CPU_TORCH, requires_extra

with requires_extra("kl_schedules.pyro", "Pyro", "pyro", note=f"it installs torch; {CPU_TORCH}"):
    import torch
    from pyro.poutine.messenger import Messenger

from kl_schedules._ppl import SiteScaling, annealed_docstring, wrap_annealed
from kl_schedules._validation import ArgumentTypeError, check_real

__all__ = ["annealed"]


def _check_beta(beta: Any) -> Any:
    """A number as a finite float >= 0; a 0-d real tensor checked likewise and kept as a
    tensor (its value is not read while ``torch.compile`` traces)."""
    if not isinstance(beta, torch.Tensor):
        return check_real("beta", beta, 0.0)
    if beta.ndim != 0 or beta.dtype == torch.bool or beta.is_complex():
        raise ArgumentTypeError(
            f"beta must be a real number or a 0-d real tensor, got a tensor of shape "
            f"{tuple(beta.shape)} and dtype {beta.dtype}"
        )
    if not torch.compiler.is_compiling():
        check_real("beta", beta.detach(), 0.0)
    return beta


class _ScaleSites(SiteScaling, Messenger):
    """Pyro's messenger for :class:`~kl_schedules._ppl.SiteScaling`."""

    def _pyro_sample(self, msg: Any) -> None:
        self.scale_site(msg)


def annealed(fn: Callable[..., Any], sites: Sequence[str]) -> Callable[..., Any]:
    # The docstring, shared with the other framework's annealed, is filled in below.
    return wrap_annealed(
        fn,
        sites,
        check_beta=_check_beta,
        handler=_ScaleSites,
        example="svi.step(x, beta=annealer.beta)",
    )


annealed.__doc__ = annealed_docstring(
    framework="Pyro",
    scale_handler="pyro.poutine.scale",
    fn_kinds="any callable running Pyro sample statements, an autoguide too",
    traced="",
    beta=(
        ": a Python or NumPy number, or a 0-d real tensor, used as it is (so\n"
        "      ``annealer.beta`` of a :class:`kl_schedules.Annealer` can be passed, a float, or a\n"
        "      0-d tensor inside ``torch.compile``, whose value is then not checked)."
    ),
    examples="""\
      >>> import pyro
      >>> import pyro.distributions as dist
      >>> import torch
      >>> from kl_schedules.pyro import annealed
      >>> def model():
      ...     pyro.sample("z", dist.Normal(0.0, 1.0))
      ...     pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))
      >>> def joint(beta, z):
      ...     conditioned = pyro.poutine.condition(annealed(model, ["z"]), {"z": torch.tensor(z)})
      ...     return pyro.poutine.trace(conditioned).get_trace(beta=beta).log_prob_sum()
      >>> [round(joint(beta, 0.0).item(), 4) for beta in (0.0, 0.5, torch.tensor(1.0))]
      [-1.4189, -1.8784, -2.3379]
    """,
)

"""Pyro adapter: anneal the KL term of an ELBO by scaling chosen sample sites by beta.

Importing this module imports pyro (and torch); ``import kl_schedules`` does not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

try:
    import torch
    from pyro.poutine.messenger import Messenger
except ImportError as error:  # pragma: no cover - exercised where pyro is absent
    raise ImportError(
        "kl_schedules.pyro needs Pyro: pip install 'kl_schedules[pyro]' (it installs torch; "
        "for the CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
    ) from error

from kl_schedules._ppl import wrap_annealed
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


class _ScaleSites(Messenger):
    """Multiplies ``msg["scale"]`` of the named sample sites by ``beta`` (0 allowed)."""

    def __init__(self, sites: frozenset[str], beta: Any) -> None:
        super().__init__()
        self.sites = sites
        self.beta = beta
        self.ran: dict[str, None] = {}  # the sample sites met, in order

    def _pyro_sample(self, msg: Any) -> None:
        name = msg["name"]
        self.ran[name] = None
        if name in self.sites:
            msg["scale"] = self.beta * msg["scale"]


def annealed(fn: Callable[..., Any], sites: Sequence[str]) -> Callable[..., Any]:
    r"""``fn`` (a Pyro model or guide) with the log-densities of ``sites`` scaled by beta.

    The returned function takes the arguments of ``fn`` plus a keyword argument ``beta``
    (consumed, not passed on), and runs ``fn`` with every sample site named in ``sites``
    scaled by ``beta``; every other site is untouched. Wrapping both the model and the
    guide with the latent sites turns the ELBO into

    .. math::
        \mathcal{L}_\beta = \mathbb{E}_q\big[\log p(x \mid z)
            + \beta\,(\log p(z) - \log q(z))\big]
        = \text{recon} - \beta\,\mathrm{KL}(q \,\|\, p)

    (with ``TraceMeanField_ELBO`` the KL is analytic and scaled by the guide's scale, so
    wrap the guide too). Unlike ``pyro.poutine.scale``, ``beta = 0`` is allowed. The scale
    multiplies any other scale of the site (a subsampled plate's ``size / subsample_size``).

    Args:
      fn: a model or guide (any callable running Pyro sample statements, an autoguide too).
      sites: a non-empty sequence of distinct sample-site names, e.g. ``["z"]``. Each must
        run in every call of ``fn``; a name that does not raises ``ValueError`` after the
        call (a misspelt name would otherwise anneal nothing).

    Returns:
      A function ``(*args, beta, **kwargs) -> fn(*args, **kwargs)``. ``beta`` is a finite
      real number >= 0: a Python or NumPy number, or a 0-d real tensor, used as it is (so
      ``annealer.beta`` of a :class:`kl_schedules.Annealer` can be passed, a float, or a
      0-d tensor inside ``torch.compile``, whose value is then not checked).

    Raises:
      TypeError: (when called) ``beta`` is missing or not a real number.
      ValueError: (when called) ``beta`` is negative or not finite, or a site did not run.

    Examples:
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
    """
    return wrap_annealed(
        fn,
        sites,
        check_beta=_check_beta,
        handler=_ScaleSites,
        example="svi.step(x, beta=annealer.beta)",
    )

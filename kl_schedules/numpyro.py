"""NumPyro adapter: anneal the KL term of an ELBO by scaling chosen sample sites by beta.

Importing this module imports numpyro; ``import kl_schedules`` does not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

try:
    from numpyro.primitives import Messenger
except ImportError as error:  # pragma: no cover - exercised where numpyro is absent
    raise ImportError(
        "kl_schedules.numpyro needs NumPyro: pip install 'kl_schedules[numpyro]'"
    ) from error
import jax.numpy as jnp
from numpyro.util import not_jax_tracer

from kl_schedules._ppl import wrap_annealed
from kl_schedules._validation import ArgumentTypeError, check_real

__all__ = ["annealed"]


def _check_beta(beta: Any) -> Any:
    """A concrete beta as a finite float >= 0; a traced one (under ``jit``) as it is,
    after checking that it is a 0-d real array (its value is unknown while tracing)."""
    if not_jax_tracer(beta):
        return check_real("beta", beta, 0.0)
    dtype = jnp.result_type(beta)
    if jnp.shape(beta) != () or not (
        jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
    ):
        raise ArgumentTypeError(
            f"beta must be a real number or a 0-d real array, got a traced array of shape "
            f"{jnp.shape(beta)} and dtype {dtype}"
        )
    return beta


class _ScaleSites(Messenger):
    """Multiplies ``msg["scale"]`` of the named sample sites by ``beta`` (0 allowed)."""

    def __init__(self, sites: frozenset[str], beta: Any) -> None:
        super().__init__()
        self.sites = sites
        self.beta = beta
        self.ran: dict[str, None] = {}  # the sample sites met, in order

    def process_message(self, msg: Any) -> None:
        if msg["type"] != "sample":
            return
        name = msg["name"]
        self.ran[name] = None
        if name in self.sites:
            scale = msg.get("scale")
            msg["scale"] = self.beta if scale is None else self.beta * scale


def annealed(fn: Callable[..., Any], sites: Sequence[str]) -> Callable[..., Any]:
    r"""``fn`` (a NumPyro model or guide) with the log-densities of ``sites`` scaled by beta.

    The returned function takes the arguments of ``fn`` plus a keyword argument ``beta``
    (consumed, not passed on), and runs ``fn`` with every sample site named in ``sites``
    scaled by ``beta``; every other site is untouched. Wrapping both the model and the
    guide with the latent sites turns the ELBO into

    .. math::
        \mathcal{L}_\beta = \mathbb{E}_q\big[\log p(x \mid z)
            + \beta\,(\log p(z) - \log q(z))\big]
        = \text{recon} - \beta\,\mathrm{KL}(q \,\|\, p)

    (with ``TraceMeanField_ELBO`` the KL is analytic and scaled by the guide's scale, so
    wrap the guide too). Unlike ``numpyro.handlers.scale``, ``beta = 0`` is allowed, and
    a traced ``beta`` (an argument of ``jax.jit(svi.update)``) is used as is, so a jitted
    step traces once while beta changes every step. The scale multiplies any other scale
    of the site (a subsampled plate's ``size / subsample_size``).

    Args:
      fn: a model or guide (any callable running NumPyro sample statements).
      sites: a non-empty sequence of distinct sample-site names, e.g. ``["z"]``. Each must
        run in every call of ``fn``; a name that does not raises ``ValueError`` after the
        call (a misspelt name would otherwise anneal nothing).

    Returns:
      A function ``(*args, beta, **kwargs) -> fn(*args, **kwargs)``. ``beta`` is a finite
      real number >= 0 (Python or NumPy number, or 0-d array); under ``jit`` a traced 0-d
      real array, whose value cannot be checked there.

    Raises:
      TypeError: (when called) ``beta`` is missing or not a real number.
      ValueError: (when called) ``beta`` is negative or not finite, or a site did not run.

    Examples:
      >>> import jax
      >>> import numpyro
      >>> import numpyro.distributions as dist
      >>> from numpyro.infer.util import log_density
      >>> from kl_schedules.numpyro import annealed
      >>> def model():
      ...     numpyro.sample("z", dist.Normal(0.0, 1.0))
      ...     numpyro.sample("x", dist.Normal(0.0, 1.0), obs=1.0)
      >>> def joint(beta, z):
      ...     return log_density(annealed(model, ["z"]), (), {"beta": beta}, {"z": z})[0]
      >>> round(float(joint(0.0, 0.0)), 4), round(float(joint(1.0, 0.0)), 4)
      (-1.4189, -2.3379)
      >>> round(float(jax.jit(joint)(0.5, 0.0)), 4)  # beta traced under jit
      -1.8784
    """
    return wrap_annealed(
        fn,
        sites,
        check_beta=_check_beta,
        handler=_ScaleSites,
        example="svi.update(state, x, beta=beta)",
    )

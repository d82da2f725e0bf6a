"""NumPyro adapter: anneal the KL term of an ELBO by scaling chosen sample sites by beta.

Importing this module imports numpyro; ``import kl_schedules`` does not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kl_schedules._extras import requires_extra

with requires_extra("kl_schedules.numpyro", "NumPyro", "numpyro"):
    from numpyro.primitives import Messenger
import jax.numpy as jnp
from numpyro.util import not_jax_tracer

from kl_schedules._ppl import SiteScaling, annealed_docstring, wrap_annealed
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


class _ScaleSites(SiteScaling, Messenger):
    """NumPyro's messenger for :class:`~kl_schedules._ppl.SiteScaling`."""

    def process_message(self, msg: Any) -> None:
        if msg["type"] == "sample":
            self.scale_site(msg)


def annealed(fn: Callable[..., Any], sites: Sequence[str]) -> Callable[..., Any]:
    # The docstring, shared with the other framework's annealed, is filled in below.
    return wrap_annealed(
        fn,
        sites,
        check_beta=_check_beta,
        handler=_ScaleSites,
        example="svi.update(state, x, beta=beta)",
    )


annealed.__doc__ = annealed_docstring(
    framework="NumPyro",
    scale_handler="numpyro.handlers.scale",
    fn_kinds="any callable running NumPyro sample statements",
    traced=(
        " A traced ``beta`` (an argument of ``jax.jit(svi.update)``) is used as is,\n"
        "    so a jitted step traces once while beta changes every step."
    ),
    beta=(
        " (Python or NumPy number, or 0-d array); under ``jit`` a traced 0-d\n"
        "      real array, whose value cannot be checked there."
    ),
    examples="""\
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
    """,
)

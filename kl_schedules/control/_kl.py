"""Array-generic KL helpers: NumPy in, NumPy out; torch in, torch out; JAX in, JAX out."""

from __future__ import annotations

import sys
from typing import Any

import jax.numpy as jnp
import numpy as np

from kl_schedules._validation import check_count, check_real


def _exp(x: Any) -> Any:
    """``exp`` in the array's own framework."""
    if isinstance(x, (np.ndarray, np.generic)):
        return np.exp(x)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.exp()
    return jnp.exp(x)


def _check_pair(mu: Any, logvar: Any) -> None:
    if tuple(np.shape(mu)) != tuple(np.shape(logvar)):
        raise ValueError(
            f"mu and logvar must have the same shape, got {tuple(np.shape(mu))} and "
            f"{tuple(np.shape(logvar))}"
        )
    if len(np.shape(mu)) < 1:
        raise ValueError(f"mu must have a latent (last) axis, got shape {tuple(np.shape(mu))}")


def _kl_elements(mu: Any, logvar: Any) -> Any:
    r"""Per-element :math:`-\tfrac12 (1 + \log\sigma^2 - \mu^2 - \sigma^2)`: the one place
    the Gaussian KL is written."""
    _check_pair(mu, logvar)
    return -0.5 * (1.0 + logvar - mu**2 - _exp(logvar))


def gaussian_kl(mu: Any, logvar: Any) -> Any:
    r"""Per-sample :math:`KL(N(\mu, \sigma^2) \| N(0, I))`, summed over the last axis.

    .. math:: KL = -\tfrac12 \sum_j (1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2)

    Args:
      mu: posterior means, shape ``[..., latent]`` (JAX, NumPy or torch).
      logvar: posterior log-variances, the same shape and kind.

    Returns:
      KL in nats, shape ``[...]``, the same kind of array as ``mu``.

    Examples:
      >>> import numpy as np
      >>> from kl_schedules.control import gaussian_kl
      >>> gaussian_kl(np.array([1.0, 0.0]), np.zeros(2))
      np.float64(0.5)
    """
    return _kl_elements(mu, logvar).sum(-1)


def kl_per_dimension(mu: Any, logvar: Any) -> Any:
    """KL of each latent dimension, averaged over all leading (batch) axes: shape ``[latent]``.

    Examples:
      >>> import numpy as np
      >>> from kl_schedules.control import kl_per_dimension
      >>> kl_per_dimension(np.array([[1.0, 0.0], [3.0, 0.0]]), np.zeros((2, 2)))
      array([2.5, 0. ])
    """
    elements = _kl_elements(mu, logvar)
    return elements.reshape(-1, elements.shape[-1]).mean(0)


def free_bits(kl_per_dim: Any, min_nats: float, groups: int | None = None) -> Any:
    r"""Free-bits KL term (Kingma et al. 2016): :math:`\sum_g \max(KL_g, \lambda)`.

    Apply it to batch-averaged per-dimension KL (:func:`kl_per_dimension`) and use the result
    in the *objective* only; report the unclamped ``kl_per_dim.sum(-1)`` as the KL of the
    bound. Dimensions (or groups) below ``min_nats`` get no gradient from the KL term.

    Args:
      kl_per_dim: KL per latent dimension, last axis = dimensions.
      min_nats: :math:`\lambda`, nats granted per dimension (or group) for free, >= 0.
      groups: split the dimensions into this many equal groups and clamp each group's sum.

    Examples:
      >>> import jax.numpy as jnp
      >>> from kl_schedules.control import free_bits
      >>> float(free_bits(jnp.array([0.1, 2.0, 0.0]), 0.5))
      3.0
    """
    min_nats = check_real("min_nats", min_nats, 0.0)
    if groups is not None:
        groups = check_count("groups", groups)
        if kl_per_dim.shape[-1] % groups:
            raise ValueError(
                f"groups must divide the number of dimensions {kl_per_dim.shape[-1]}, got {groups}"
            )
        kl_per_dim = kl_per_dim.reshape(*kl_per_dim.shape[:-1], groups, -1).sum(-1)
    return kl_per_dim.clip(min=min_nats).sum(-1)


def active_units(mu: Any, threshold: float = 0.01) -> Any:
    r"""Number of active latent units (Burda et al. 2016).

    .. math:: AU = \#\{j : \mathrm{Var}_x(E_q[z_j | x]) > \delta\}

    Args:
      mu: posterior means over a data set, shape ``[..., latent]``.
      threshold: :math:`\delta`, default 0.01.

    Returns:
      The count, as a 0-d value of ``mu``'s kind (``int(...)`` on the host).

    Examples:
      >>> import numpy as np
      >>> from kl_schedules.control import active_units
      >>> int(active_units(np.array([[0.0, 1.0], [0.0, -1.0]])))
      1
    """
    threshold = check_real("threshold", threshold, 0.0)
    flat = mu.reshape(-1, mu.shape[-1])
    variance = ((flat - flat.mean(0)) ** 2).mean(0)  # population variance, every framework
    return (variance > threshold).sum()

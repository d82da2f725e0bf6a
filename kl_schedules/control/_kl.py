"""Array-generic KL helpers: NumPy in, NumPy out; torch in, torch out; JAX in, JAX out.

One rule for mixed kinds: a 0-d number of any kind (a Python or NumPy number, a 0-d JAX
array or torch tensor) combines with an array of any kind, and the result has the array's
kind and float dtype. The number is taken as a Python float (so it never promotes the
array's dtype), except a 0-d tensor or array of the array's own framework, which is kept
(a torch tensor keeps its autograd graph; a JAX value may be traced, and is cast to the
array's dtype). A bool is never a number. A traced JAX number combines with JAX arrays only.
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kl_schedules._validation import ArgumentTypeError, check_count, check_real


def _framework(x: Any) -> str | None:
    """``"numpy"``, ``"torch"`` or ``"jax"`` for an array, tensor or NumPy scalar of that
    framework; ``None`` for anything else (a Python number)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return "numpy"
    if isinstance(x, jax.Array):
        return "jax"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return "torch"
    return None


def _number_for(name: str, value: Any, array: Any) -> Any:
    """The 0-d number ``value`` in a form that combines with ``array`` (any framework, or a
    Python number) and keeps ``array``'s kind and float dtype; see the module notes."""
    dtype = getattr(value, "dtype", None)
    if isinstance(value, (bool, np.bool_)) or str(dtype) in ("bool", "torch.bool"):
        raise ArgumentTypeError(f"{name} must be a number, got a bool: {value!r}", argument=name)
    if tuple(getattr(value, "shape", ())) != ():
        raise ArgumentTypeError(
            f"{name} must be a number or a 0-d array, got shape {tuple(value.shape)}",
            argument=name,
        )
    framework = _framework(value)
    if framework is not None and framework == _framework(array) != "numpy":
        if framework == "jax" and jnp.issubdtype(array.dtype, jnp.floating):
            return value.astype(array.dtype)
        return value  # torch: a 0-d tensor never promotes a tensor's dtype
    if isinstance(value, jax.core.Tracer):
        raise ArgumentTypeError(
            f"{name} is a traced JAX value, which combines with JAX arrays only, not with "
            f"{type(array).__name__}",
            argument=name,
        )
    return check_real(name, value)


def _exp(x: Any) -> Any:
    """``exp`` in the array's own framework."""
    framework = _framework(x)
    return np.exp(x) if framework == "numpy" else x.exp() if framework == "torch" else jnp.exp(x)


def _stop_gradient(x: Any) -> Any:
    framework = _framework(x)
    if framework == "torch":
        return x.detach()
    return jax.lax.stop_gradient(x) if framework == "jax" else x


def _where(condition: Any, x: Any, y: Any) -> Any:
    """``x`` where ``condition`` else ``y``, in ``x``'s framework (``condition`` may be a
    Python bool)."""
    if isinstance(condition, bool):
        return x if condition else y
    framework = _framework(x)
    if framework == "torch":
        return sys.modules["torch"].where(condition, x, y)
    return jnp.where(condition, x, y) if framework == "jax" else np.where(condition, x, y)


def _shape(x: Any) -> tuple[int, ...]:
    """An array's shape, read directly where it has one (NumPy dispatch costs ~1 us)."""
    shape = getattr(x, "shape", None)
    return tuple(shape) if shape is not None else tuple(np.shape(x))


def _check_pair(mu: Any, logvar: Any) -> None:
    mu_shape, logvar_shape = _shape(mu), _shape(logvar)
    if mu_shape != logvar_shape:
        raise ValueError(
            f"mu and logvar must have the same shape, got {mu_shape} and {logvar_shape}"
        )
    if len(mu_shape) < 1:
        raise ValueError(f"mu must have a latent (last) axis, got shape {mu_shape}")


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


def kl_balance(
    kl_per_group: Any, beta: Any, alpha: Any = None, epsilon: float = 0.01
) -> tuple[Any, Any]:
    r"""KL balancing for hierarchical VAEs (NVAE, Vahdat & Kautz 2020), used during warm-up.

    While beta < 1 (the warm-up), each latent group's KL is weighted by a coefficient
    proportional to that group's average KL (and inversely to its size ``alpha``), so
    groups that carry little information are pushed less hard towards the prior and no
    group collapses early; from beta = 1 on the coefficients are 1:

    .. math::
        c_g &= \frac{\overline{KL}_g + \epsilon}{\alpha_g}, \qquad
        \gamma_g = \frac{c_g}{\frac{1}{G}\sum_h c_h} \quad (\beta < 1), \qquad
        \gamma_g = 1 \quad (\beta \ge 1) \\
        \text{kl\_term} &= \beta \sum_g \operatorname{sg}(\gamma_g)\, KL_g

    with :math:`\overline{KL}_g` the batch mean of :math:`|KL_g|`, :math:`G` the number of
    groups and :math:`\operatorname{sg}` a stop-gradient (the coefficients are constants
    for the optimiser). The coefficients average to 1, so balancing moves weight between
    groups without changing the total.

    Args:
      kl_per_group: KL of each latent group, shape ``[batch, groups]`` (or ``[groups]`` for
        batch-averaged values); JAX, NumPy or torch.
      beta: the current KL weight, a number or 0-d array of any kind (a traced one with a
        JAX ``kl_per_group``), e.g. from a warm-up schedule.
      alpha: relative size of each group, shape ``[groups]`` (NVAE: larger for groups at
        higher spatial resolution); default all ones.
      epsilon: added to each group's mean KL, so an empty group keeps a small weight.

    Returns:
      ``(kl_term, coefficients)``: the KL term for the objective, per sample (shape
      ``[batch]``, or ``[]``), already multiplied by ``beta``; and :math:`\gamma`, shape
      ``[groups]``, to log.

    Examples:
      >>> import numpy as np
      >>> from kl_schedules.control import kl_balance
      >>> kl = np.array([[3.0, 1.0], [5.0, 1.0]])     # 2 samples, 2 groups
      >>> term, coefficients = kl_balance(kl, beta=0.5)
      >>> coefficients.round(3), term.round(3)
      (array([1.598, 0.402]), array([2.598, 4.195]))
      >>> kl_balance(kl, beta=1.0)[1]
      array([1., 1.])

    References:
      Vahdat & Kautz, "NVAE: A Deep Hierarchical Variational Autoencoder", NeurIPS 2020.
    """
    epsilon = check_real("epsilon", epsilon, 0.0, low_open=True)
    beta = _number_for("beta", beta, kl_per_group)
    shape = tuple(np.shape(kl_per_group))
    if len(shape) not in (1, 2):
        raise ValueError(f"kl_per_group must have shape [batch, groups] or [groups], got {shape}")
    flat = kl_per_group.reshape(-1, shape[-1])
    mean_kl = abs(flat).mean(0)
    if alpha is None:
        scaled = mean_kl + epsilon
    else:
        if tuple(np.shape(alpha)) != (shape[-1],):
            raise ValueError(f"alpha must have shape ({shape[-1]},), got {tuple(np.shape(alpha))}")
        scaled = (mean_kl + epsilon) / alpha
    balanced = _stop_gradient(scaled / scaled.mean())
    coefficients = _where(beta < 1.0, balanced, balanced * 0.0 + 1.0)
    return beta * (kl_per_group * coefficients).sum(-1), coefficients

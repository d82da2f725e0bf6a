"""Feedback-controlled beta and KL regularisers, jit-ready, with host-side twins.

Each controller is a small immutable state plus pure functions (the pattern of
:func:`kl_schedules.annealing`), usable inside ``jax.jit`` / ``lax.scan``. Its update rule
is written once against a math namespace and shared with a host class (``PIController``,
``GECO``) that runs in plain Python, with no JAX call per step, for PyTorch loops.

The KL helpers (``gaussian_kl``, ``kl_per_dimension``, ``free_bits``, ``active_units``,
``capacity_objective``) are array-generic: they take JAX, NumPy or torch arrays and return
the same kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from kl_schedules._backend import JAX_MATH, PY_MATH, MathBackend
from kl_schedules._schedules import Schedule, monotonic_schedule
from kl_schedules._validation import check_count, check_real

# ---- array-generic KL helpers -------------------------------------------------------------


def _exp(x: Any) -> Any:
    return x.exp() if hasattr(x, "exp") else jnp.exp(x)  # torch tensors have .exp()


def gaussian_kl(mu: Any, logvar: Any) -> Any:
    r"""Per-sample :math:`KL(N(\mu, \sigma^2) \| N(0, I))`, summed over the last axis.

    .. math:: KL = -\tfrac12 \sum_j (1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2)

    Examples:
      >>> import jax.numpy as jnp
      >>> from kl_schedules.control import gaussian_kl
      >>> float(gaussian_kl(jnp.array([1.0, 0.0]), jnp.zeros(2)))
      0.5
    """
    return -0.5 * (1.0 + logvar - mu**2 - _exp(logvar)).sum(-1)


def kl_per_dimension(mu: Any, logvar: Any) -> Any:
    """KL of each latent dimension, averaged over all leading (batch) axes: shape ``[latent]``."""
    latent = mu.shape[-1]
    per_element = -0.5 * (1.0 + logvar - mu**2 - _exp(logvar))
    return per_element.reshape(-1, latent).mean(0)


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
      The count, as a 0-d array of ``mu``'s kind (``int(...)`` on the host).
    """
    threshold = check_real("threshold", threshold, 0.0)
    flat = mu.reshape(-1, mu.shape[-1])
    variance = ((flat - flat.mean(0)) ** 2).mean(0)  # population variance, every framework
    return (variance > threshold).sum()


# ---- capacity (Burgess et al. 2018) -------------------------------------------------------


def capacity_schedule(max_capacity: float, total_steps: int, delay: int = 0) -> Schedule:
    r"""The capacity :math:`C(t)`, rising linearly from 0 to ``max_capacity`` nats.

    This is :func:`~kl_schedules.monotonic_schedule` with ``start=0, end=max_capacity``.
    """
    max_capacity = check_real("max_capacity", max_capacity, 0.0)
    return monotonic_schedule(total_steps, "linear", 0.0, max_capacity, delay)


def capacity_objective(kl: Any, capacity: Any, gamma: float = 1000.0) -> Any:
    r"""Capacity-annealing KL term (Burgess et al. 2018): :math:`\gamma\,|KL - C|`.

    ``loss = recon + capacity_objective(kl, C(t), gamma)``. Works on JAX/NumPy/torch values
    and Python floats.
    """
    gamma = check_real("gamma", gamma, 0.0)
    return gamma * abs(kl - capacity)


# ---- PI control (ControlVAE, Shao et al. 2020) ---------------------------------------------


class PIState(NamedTuple):
    """State of :func:`pi_controller`: the current ``beta`` and the integral term."""

    beta: jax.Array
    integral: jax.Array


def _pi_rule(beta, integral, kl, target, k_p, k_i, beta_min, beta_max, xp: MathBackend):
    r"""One PI step; returns ``(beta, integral)``. Non-finite ``kl`` leaves both unchanged.

    .. math::
        e &= KL^* - KL \\
        P &= k_p\, \sigma(-e) = k_p / (1 + e^{e}) \\
        I' &= I - k_i e \quad\text{(kept only if it leaves beta unsaturated: anti-windup)} \\
        \beta &= \mathrm{clip}(P + I' + \beta_{min},\ \beta_{min},\ \beta_{max})
    """
    error = target - kl
    proportional = k_p * xp.sigmoid(-error)
    candidate = integral - k_i * error
    raw = proportional + candidate + beta_min
    unsaturated = xp.logical_and(raw >= beta_min, raw <= beta_max)
    valid = xp.isfinite(kl)
    new_integral = xp.where(xp.logical_and(valid, unsaturated), candidate, integral)
    new_beta = xp.clip(proportional + new_integral + beta_min, beta_min, beta_max)
    return xp.where(valid, new_beta, beta), new_integral


class FeedbackControl(NamedTuple):
    """Pure functions of a feedback controller: ``init() -> state``,
    ``update(state, measurement) -> state``; the current beta is ``state.beta``."""

    init: Callable[[], Any]
    update: Callable[[Any, Any], Any]


def _check_pi(target_kl, k_p, k_i, beta_min, beta_max) -> dict[str, float]:
    params = {
        "target": check_real("target_kl", target_kl, 0.0),
        "k_p": check_real("k_p", k_p, 0.0),
        "k_i": check_real("k_i", k_i, 0.0),
        "beta_min": check_real("beta_min", beta_min, 0.0),
        "beta_max": check_real("beta_max", beta_max, 0.0),
    }
    if params["beta_max"] <= params["beta_min"]:
        raise ValueError(f"beta_max must be > beta_min, got {beta_max!r} <= {beta_min!r}")
    return params


def pi_controller(
    target_kl: float,
    k_p: float = 0.01,
    k_i: float = 1e-4,
    beta_min: float = 0.0,
    beta_max: float = 1.0,
) -> FeedbackControl:
    r"""PI control of beta towards a target KL (ControlVAE, Shao et al. 2020).

    Each ``update(state, kl)`` takes the batch KL (nats, per sample) and applies

    .. math::
        e_t &= KL^* - KL_t, \qquad P_t = k_p / (1 + e^{e_t}) \\
        I_t &= I_{t-1} - k_i e_t \quad\text{only while } P_t + I_t + \beta_{min}
               \in [\beta_{min}, \beta_{max}] \text{ (anti-windup)} \\
        \beta_t &= \mathrm{clip}(P_t + I_t + \beta_{min}, \beta_{min}, \beta_{max})

    Anti-windup is conditional integration: an integral step that would push beta past a
    bound is not taken, so the integral never winds up while beta is saturated (the
    reference's check can never fire). A NaN or infinite ``kl`` is ignored: the state is
    returned unchanged. Use ``state.beta`` in the loss of the *next* step.

    Args:
      target_kl: :math:`KL^*`, the set point in nats (a few for text, tens for images).
      k_p: proportional gain (reference 0.01).
      k_i: integral gain (reference 1e-4; their code writes ``Ki = -1e-4``).
      beta_min: lower bound of beta.
      beta_max: upper bound of beta.

    Returns:
      A :class:`FeedbackControl` over :class:`PIState`.

    Examples:
      >>> from kl_schedules.control import pi_controller
      >>> control = pi_controller(target_kl=3.0)
      >>> state = control.init()
      >>> state = control.update(state, 8.0)     # KL above target: beta rises
      >>> round(float(state.beta), 5)
      0.01043
    """
    params = _check_pi(target_kl, k_p, k_i, beta_min, beta_max)
    dtype = jnp.result_type(float)

    def init() -> PIState:
        return PIState(beta=jnp.asarray(params["beta_min"], dtype), integral=jnp.zeros((), dtype))

    def update(state: PIState, kl: Any) -> PIState:
        kl = jnp.asarray(kl, dtype)
        beta, integral = _pi_rule(state.beta, state.integral, kl, **params, xp=JAX_MATH)
        return PIState(beta=beta, integral=integral)

    return FeedbackControl(init=init, update=update)


class PIController:
    """Host twin of :func:`pi_controller` for PyTorch loops: plain Python, same numbers.

    Examples:
      >>> from kl_schedules.control import PIController
      >>> controller = PIController(target_kl=3.0)
      >>> beta = controller.update(8.0)            # a float or a 0-d tensor (via float())
      >>> round(beta, 5)
      0.01043
    """

    def __init__(
        self,
        target_kl: float,
        k_p: float = 0.01,
        k_i: float = 1e-4,
        beta_min: float = 0.0,
        beta_max: float = 1.0,
    ) -> None:
        self._params = _check_pi(target_kl, k_p, k_i, beta_min, beta_max)
        self.beta = self._params["beta_min"]
        self.integral = 0.0

    def update(self, kl: Any) -> float:
        """Feeds one batch KL (a number or 0-d tensor); returns the new beta."""
        self.beta, self.integral = _pi_rule(
            self.beta, self.integral, float(kl), **self._params, xp=PY_MATH
        )
        return self.beta

    def state_dict(self) -> dict[str, float]:
        return {"beta": self.beta, "integral": self.integral}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.beta = check_real("beta", state["beta"])
        self.integral = check_real("integral", state["integral"])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"PIController({args}, beta={self.beta!r})"


# ---- GECO (Rezende & Viola 2018) ----------------------------------------------------------


class GECOState(NamedTuple):
    """State of :func:`geco`: ``beta``, the EMA of the reconstruction error, and how many
    errors it has seen (the first initialises the EMA)."""

    beta: jax.Array
    error_ema: jax.Array
    num_updates: jax.Array


def _geco_rule(
    beta, error_ema, num_updates, error, goal, step_size, alpha, log_min, log_max, xp: MathBackend
):
    r"""One GECO step; returns ``(beta, error_ema, num_updates)``. Non-finite errors are ignored.

    .. math::
        \bar r &\leftarrow \alpha \bar r + (1 - \alpha) r
            \quad (\bar r = r \text{ at the first step}) \\
        \beta &\leftarrow \mathrm{clip}(\beta\, e^{\eta (g - \bar r)},\ \beta_{min},\ \beta_{max})

    computed in log space, so the exponential never overflows.
    """
    valid = xp.isfinite(error)
    ema = xp.where(num_updates == 0, error, alpha * error_ema + (1.0 - alpha) * error)
    log_beta = xp.clip(xp.log(beta) + step_size * (goal - ema), log_min, log_max)
    return (
        xp.where(valid, xp.exp(log_beta), beta),
        xp.where(valid, ema, error_ema),
        xp.where(valid, num_updates + 1, num_updates),
    )


def _check_geco(goal, step_size, alpha, beta_init, beta_min, beta_max) -> tuple[dict, float]:
    beta_min = check_real("beta_min", beta_min, 0.0, low_open=True)
    beta_max = check_real("beta_max", beta_max, 0.0, low_open=True)
    if beta_max <= beta_min:
        raise ValueError(f"beta_max must be > beta_min, got {beta_max!r} <= {beta_min!r}")
    params = {
        "goal": check_real("goal", goal),
        "step_size": check_real("step_size", step_size, 0.0, low_open=True),
        "alpha": check_real("alpha", alpha, 0.0, 1.0, high_open=True),
        "log_min": math.log(beta_min),
        "log_max": math.log(beta_max),
    }
    return params, check_real("beta_init", beta_init, beta_min, beta_max)


def geco(
    goal: float,
    step_size: float,
    alpha: float = 0.99,
    beta_init: float = 1.0,
    beta_min: float = 1e-10,
    beta_max: float = 1e10,
) -> FeedbackControl:
    r"""GECO (Rezende & Viola 2018), as commonly implemented, for ``loss = recon + beta KL``.

    ``update(state, recon_error)`` keeps an EMA :math:`\bar r` of the reconstruction error and
    moves beta multiplicatively: beta grows while :math:`\bar r` is below the ``goal`` and
    shrinks while it is above, so the reconstruction settles at the goal (see
    :func:`_geco_rule`). Use the beta from *before* the update in the loss; checkpoint
    the whole state (beta and the EMA). NaN/inf errors are ignored.

    Args:
      goal: target reconstruction error (same units as the error fed in).
      step_size: :math:`\eta` > 0.
      alpha: EMA factor in [0, 1).
      beta_init: starting beta, inside [beta_min, beta_max].
      beta_min: lower clamp (> 0).
      beta_max: upper clamp.

    Examples:
      >>> from kl_schedules.control import geco
      >>> control = geco(goal=10.0, step_size=0.01)
      >>> state = control.update(control.init(), 12.0)   # error above goal: beta shrinks
      >>> round(float(state.beta), 4)
      0.9802
    """
    params, beta_init = _check_geco(goal, step_size, alpha, beta_init, beta_min, beta_max)
    dtype = jnp.result_type(float)

    def init() -> GECOState:
        return GECOState(
            beta=jnp.asarray(beta_init, dtype),
            error_ema=jnp.zeros((), dtype),
            num_updates=jnp.zeros((), jnp.int32),
        )

    def update(state: GECOState, recon_error: Any) -> GECOState:
        error = jnp.asarray(recon_error, dtype)
        return GECOState(*_geco_rule(*state, error, **params, xp=JAX_MATH))

    return FeedbackControl(init=init, update=update)


class GECO:
    """Host twin of :func:`geco` for PyTorch loops: plain Python, same numbers.

    Examples:
      >>> from kl_schedules.control import GECO
      >>> controller = GECO(goal=10.0, step_size=0.01)
      >>> beta_for_this_loss = controller.beta
      >>> round(controller.update(12.0), 4)
      0.9802
    """

    def __init__(
        self,
        goal: float,
        step_size: float,
        alpha: float = 0.99,
        beta_init: float = 1.0,
        beta_min: float = 1e-10,
        beta_max: float = 1e10,
    ):
        self._params, self.beta = _check_geco(goal, step_size, alpha, beta_init, beta_min, beta_max)
        self.error_ema = 0.0
        self.num_updates = 0

    def update(self, recon_error: Any) -> float:
        """Feeds one batch reconstruction error (number or 0-d tensor); returns new beta."""
        self.beta, self.error_ema, self.num_updates = _geco_rule(
            self.beta,
            self.error_ema,
            self.num_updates,
            float(recon_error),
            **self._params,
            xp=PY_MATH,
        )
        return self.beta

    def state_dict(self) -> dict[str, float]:
        return {"beta": self.beta, "error_ema": self.error_ema, "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.beta = check_real("beta", state["beta"], 0.0, low_open=True)
        self.error_ema = check_real("error_ema", state["error_ema"])
        self.num_updates = check_count("num_updates", state["num_updates"], minimum=0)

    def __repr__(self) -> str:
        return (
            f"GECO(beta={self.beta!r}, error_ema={self.error_ema!r}, "
            f"num_updates={self.num_updates})"
        )

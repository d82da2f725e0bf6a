"""GECO (Rezende & Viola 2018): beta as a Lagrange multiplier on a reconstruction goal."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from kl_schedules._backend import JAX_MATH, PY_MATH, MathBackend, float_dtype
from kl_schedules._host import HostBeta
from kl_schedules._validation import check_count, check_keys, check_measurement, check_real

# Defaults, in one place for geco and GECO.
ALPHA = 0.99
BETA_INIT = 1.0
BETA_MIN = 1e-10
BETA_MAX = 1e10


class _GECOParams(NamedTuple):
    goal: float
    step_size: float
    alpha: float
    beta_init: float
    beta_min: float
    beta_max: float


def _geco_params(
    goal: Any, step_size: Any, alpha: Any, beta_init: Any, beta_min: Any, beta_max: Any
) -> _GECOParams:
    beta_min = check_real("beta_min", beta_min, 0.0, low_open=True)
    beta_max = check_real("beta_max", beta_max, 0.0, low_open=True)
    if beta_max <= beta_min:
        raise ValueError(f"beta_max must be > beta_min, got {beta_max!r} <= {beta_min!r}")
    return _GECOParams(
        goal=check_real("goal", goal),
        step_size=check_real("step_size", step_size, 0.0, low_open=True),
        alpha=check_real("alpha", alpha, 0.0, 1.0, high_open=True),
        beta_init=check_real("beta_init", beta_init, beta_min, beta_max),
        beta_min=beta_min,
        beta_max=beta_max,
    )


def _geco_rule(
    beta: Any, error_ema: Any, num_updates: Any, error: Any, p: _GECOParams, xp: MathBackend
) -> tuple[Any, Any, Any]:
    r"""One GECO step; returns ``(beta, error_ema, num_updates)``. Non-finite errors are ignored.

    .. math::
        \bar r &\leftarrow \alpha \bar r + (1 - \alpha) r
            \quad (\bar r = r \text{ at the first step}) \\
        \beta &\leftarrow \mathrm{clip}(\beta\, e^{\eta (g - \bar r)},\ \beta_{min},\ \beta_{max})

    computed in log space, so the exponential never overflows.
    """
    valid = xp.isfinite(error)
    ema = xp.where(num_updates == 0, error, p.alpha * error_ema + (1.0 - p.alpha) * error)
    log_beta = xp.clip(
        xp.log(beta) + p.step_size * (p.goal - ema), math.log(p.beta_min), math.log(p.beta_max)
    )
    return (
        xp.where(valid, xp.exp(log_beta), beta),
        xp.where(valid, ema, error_ema),
        xp.where(valid, num_updates + 1, num_updates),
    )


class GECOState(NamedTuple):
    """State of :func:`geco`: ``beta``, the EMA of the reconstruction error, and how many
    errors it has seen (the first initialises the EMA)."""

    beta: jax.Array
    error_ema: jax.Array
    num_updates: jax.Array


class GECOControl(NamedTuple):
    """The pure functions of :func:`geco`: ``init() -> GECOState`` and
    ``update(state, recon_error) -> GECOState``; the current beta is ``state.beta``."""

    init: Callable[[], GECOState]
    update: Callable[[GECOState, ArrayLike], GECOState]


def geco(
    goal: float,
    step_size: float,
    alpha: float = ALPHA,
    beta_init: float = BETA_INIT,
    beta_min: float = BETA_MIN,
    beta_max: float = BETA_MAX,
) -> GECOControl:
    r"""GECO (Rezende & Viola 2018), as commonly implemented, for ``loss = recon + beta KL``.

    ``update(state, recon_error)`` keeps an EMA :math:`\bar r` of the reconstruction error and
    moves beta multiplicatively: beta grows while :math:`\bar r` is below the ``goal`` and
    shrinks while it is above, so the reconstruction settles at the goal:

    .. math::
        \bar r &\leftarrow \alpha \bar r + (1 - \alpha) r
            \quad (\bar r = r \text{ at the first update}) \\
        \beta &\leftarrow \mathrm{clip}(\beta\, e^{\eta (g - \bar r)},\ \beta_{min},\ \beta_{max})

    computed in log space, so the exponential never overflows. Use the beta from *before*
    the update in the loss; checkpoint the whole state (beta and the EMA). NaN/inf errors
    are ignored.

    Args:
      goal: target reconstruction error :math:`g` (same units as the error fed in).
      step_size: :math:`\eta` > 0.
      alpha: EMA factor in [0, 1).
      beta_init: starting beta, inside [beta_min, beta_max].
      beta_min: lower clamp (> 0).
      beta_max: upper clamp.

    Returns:
      A :class:`GECOControl` over :class:`GECOState`.

    Examples:
      >>> from kl_schedules.control import geco
      >>> control = geco(goal=10.0, step_size=0.01)
      >>> state = control.update(control.init(), 12.0)   # error above goal: beta shrinks
      >>> round(float(state.beta), 4)
      0.9802

    References:
      Rezende & Viola, "Taming VAEs", 2018. https://arxiv.org/abs/1810.00597
    """
    params = _geco_params(goal, step_size, alpha, beta_init, beta_min, beta_max)

    def init() -> GECOState:
        dtype = float_dtype()
        return GECOState(
            beta=jnp.asarray(params.beta_init, dtype),
            error_ema=jnp.zeros((), dtype),
            num_updates=jnp.zeros((), jnp.int32),
        )

    def update(state: GECOState, recon_error: ArrayLike) -> GECOState:
        error = jnp.asarray(recon_error, float_dtype())
        return GECOState(*_geco_rule(*state, error, params, JAX_MATH))

    return GECOControl(init=init, update=update)


class GECO(HostBeta):
    """Host twin of :func:`geco` for PyTorch loops: plain Python, same numbers.

    ``controller.beta`` is a float (inside ``torch.compile``, a 0-d tensor holding it). The
    whole object pickles. ``load_state_dict`` checks that beta lies in
    ``[beta_min, beta_max]``.

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
        alpha: float = ALPHA,
        beta_init: float = BETA_INIT,
        beta_min: float = BETA_MIN,
        beta_max: float = BETA_MAX,
    ) -> None:
        self._params = _geco_params(goal, step_size, alpha, beta_init, beta_min, beta_max)
        self._error_ema = 0.0
        self._num_updates = 0
        self._set_beta(self._params.beta_init)

    @property
    def error_ema(self) -> float:
        """The EMA :math:`\\bar r` of the reconstruction error."""
        return self._error_ema

    @property
    def num_updates(self) -> int:
        """How many finite errors :meth:`update` has seen."""
        return self._num_updates

    def update(self, recon_error: Any) -> float:
        """Feeds one batch reconstruction error (number or 0-d tensor); returns the new beta."""
        beta, self._error_ema, self._num_updates = _geco_rule(
            self._beta,
            self._error_ema,
            self._num_updates,
            check_measurement("recon_error", recon_error),
            self._params,
            PY_MATH,
        )
        self._set_beta(beta)
        return self._beta

    def _config(self) -> dict[str, Any]:
        return dict(self._params._asdict())

    def state_dict(self) -> dict[str, Any]:
        """``{"beta", "error_ema", "num_updates"}`` as plain, JSON-serialisable data."""
        return {"beta": self._beta, "error_ema": self._error_ema, "num_updates": self._num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`, checking every entry (beta against the bounds)
        before changing anything."""
        p = self._params
        check_keys("state_dict", state, ("beta", "error_ema", "num_updates"))
        beta = check_real("beta", state["beta"], p.beta_min, p.beta_max)
        error_ema = check_real("error_ema", state["error_ema"])
        num_updates = check_count("num_updates", state["num_updates"], minimum=0)
        self._error_ema, self._num_updates = error_ema, num_updates  # all checked: commit
        self._set_beta(beta)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return (
            f"GECO({args}, beta={self._beta!r}, error_ema={self._error_ema!r}, "
            f"num_updates={self._num_updates})"
        )

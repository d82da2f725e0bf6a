"""GECO (Rezende & Viola 2018): beta as a Lagrange multiplier on a reconstruction goal."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from kl_schedules._backend import JAX_MATH, PY_MATH, MathBackend, float_dtype
from kl_schedules._host import (
    HostObject,
    Settings,
    init_takes_settings,
    runs_eagerly_when_compiled,
    setting,
    takes_settings,
)
from kl_schedules._validation import (
    check_beta_bounds,
    check_count,
    check_measured_float,
    check_measurement_kind,
    check_real,
)

_positive = partial(check_real, low=0.0, low_open=True)


@dataclasses.dataclass(frozen=True)
class GECOSettings(Settings):
    """The settings of :func:`geco` and :class:`GECO`: their arguments, defaults and
    checks, in one place (see :func:`geco`'s Args)."""

    goal: float = setting(check_real)
    step_size: float = setting(_positive)
    alpha: float = setting(partial(check_real, low=0.0, high=1.0, high_open=True), 0.99)
    beta_init: float = setting(check_real, 1.0)
    beta_min: float = setting(_positive, 1e-10)
    beta_max: float = setting(_positive, 1e10)

    def check_together(self) -> None:
        check_beta_bounds(self.beta_min, self.beta_max)
        check_real("beta_init", self.beta_init, self.beta_min, self.beta_max)


def _geco_rule(
    beta: Any, error_ema: Any, num_updates: Any, error: Any, p: GECOSettings, xp: MathBackend
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


@takes_settings(GECOSettings)
def geco(params: GECOSettings) -> GECOControl:
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

    def init() -> GECOState:
        dtype = float_dtype()
        return GECOState(
            beta=jnp.asarray(params.beta_init, dtype),
            error_ema=jnp.zeros((), dtype),
            num_updates=jnp.zeros((), jnp.int32),
        )

    def update(state: GECOState, recon_error: ArrayLike) -> GECOState:
        check_measurement_kind("recon_error", recon_error)
        error = jnp.asarray(recon_error, float_dtype())
        return GECOState(*_geco_rule(*state, error, params, JAX_MATH))

    return GECOControl(init=init, update=update)


class GECO(HostObject):
    """Host twin of :func:`geco` for PyTorch loops: plain Python, same numbers.

    ``controller.beta`` is a float (inside ``torch.compile``, a 0-d tensor holding it).
    Call :meth:`update` outside the compiled function; called inside, it runs eagerly (a
    graph break) and returns beta as a 0-d tensor, and with ``fullgraph=True`` tracing
    stops with an error saying so.

    ``state_dict()`` holds the settings, ``beta``, ``error_ema`` and ``num_updates``; loading
    it keeps the host objects' contract (see :meth:`load_state_dict`; beta is checked
    against the bounds), and the whole object pickles.

    Examples:
      >>> from kl_schedules.control import GECO
      >>> controller = GECO(goal=10.0, step_size=0.01)
      >>> beta_for_this_loss = controller.beta
      >>> round(controller.update(12.0), 4)
      0.9802
    """

    settings_type = GECOSettings
    state_keys = ("beta", "error_ema", "num_updates")

    _settings: GECOSettings

    @init_takes_settings(GECOSettings)
    def __init__(self, settings: GECOSettings) -> None:
        self._start(settings, settings.beta_init)
        self._error_ema = 0.0
        self._num_updates = 0

    @property
    def error_ema(self) -> float:
        """The EMA :math:`\\bar r` of the reconstruction error."""
        return self._error_ema

    @property
    def num_updates(self) -> int:
        """How many finite errors :meth:`update` has seen."""
        return self._num_updates

    @runs_eagerly_when_compiled
    def update(self, recon_error: Any) -> Any:
        """Feeds one batch reconstruction error (number or 0-d tensor); returns the new beta."""
        beta, self._error_ema, self._num_updates = _geco_rule(
            self._beta,
            self._error_ema,
            self._num_updates,
            check_measured_float("recon_error", recon_error),
            self._settings,
            PY_MATH,
        )
        self._set_beta(beta)
        return self._beta

    def _state(self) -> dict[str, Any]:
        return {"beta": self._beta, "error_ema": self._error_ema, "num_updates": self._num_updates}

    def _load(self, state: Any, settings: Any) -> None:
        beta = check_real("beta", state["beta"], settings.beta_min, settings.beta_max)
        error_ema = check_real("error_ema", state["error_ema"])
        num_updates = check_count("num_updates", state["num_updates"], minimum=0)
        self._settings = settings  # all checked: commit
        self._error_ema, self._num_updates = error_ema, num_updates
        self._set_beta(beta)

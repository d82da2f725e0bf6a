"""PI control of beta towards a target KL (ControlVAE, Shao et al. 2020; DynamicVAE)."""

from __future__ import annotations

import dataclasses
from collections import deque
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

_non_negative = partial(check_real, low=0.0)


@dataclasses.dataclass(frozen=True)
class PISettings(Settings):
    """The settings of :func:`pi_controller` and :class:`PIController`: their arguments,
    defaults (the reference gains) and checks, in one place (see :func:`pi_controller`'s
    Args)."""

    target_kl: float = setting(_non_negative)
    k_p: float = setting(_non_negative, 0.01)
    k_i: float = setting(_non_negative, 1e-4)
    beta_min: float = setting(_non_negative, 0.0)
    beta_max: float = setting(_non_negative, 1.0)
    window: int = setting(partial(check_count, maximum=100_000), 1)

    def check_together(self) -> None:
        check_beta_bounds(self.beta_min, self.beta_max)


def _pi_rule(beta: Any, integral: Any, kl: Any, p: PISettings, xp: MathBackend) -> tuple[Any, Any]:
    r"""One PI step on a (filtered) KL; returns ``(beta, integral)``. Non-finite ``kl``
    leaves both unchanged.

    .. math::
        e &= KL^* - KL \\
        P &= k_p\, \sigma(-e) = k_p / (1 + e^{e}) \\
        I' &= I - k_i e \quad\text{(kept only if it leaves beta unsaturated: anti-windup)} \\
        \beta &= \mathrm{clip}(P + I' + \beta_{min},\ \beta_{min},\ \beta_{max})
    """
    error = p.target_kl - kl
    proportional = p.k_p * xp.sigmoid(-error)
    candidate = integral - p.k_i * error
    raw = proportional + candidate + p.beta_min
    unsaturated = xp.logical_and(raw >= p.beta_min, raw <= p.beta_max)
    valid = xp.isfinite(kl)
    new_integral = xp.where(xp.logical_and(valid, unsaturated), candidate, integral)
    new_beta = xp.clip(proportional + new_integral + p.beta_min, p.beta_min, p.beta_max)
    return xp.where(valid, new_beta, beta), new_integral


class PIState(NamedTuple):
    """State of :func:`pi_controller`.

    Attributes:
      beta: the current beta.
      integral: the integral term :math:`I`.
      recent_kl: the last ``window`` finite KL values, newest first (NaN: not seen yet).
    """

    beta: jax.Array
    integral: jax.Array
    recent_kl: jax.Array


class PIControl(NamedTuple):
    """The pure functions of :func:`pi_controller`: ``init() -> PIState`` and
    ``update(state, kl) -> PIState``; the current beta is ``state.beta``."""

    init: Callable[[], PIState]
    update: Callable[[PIState, ArrayLike], PIState]


@takes_settings(PISettings)
def pi_controller(params: PISettings) -> PIControl:
    r"""PI control of beta towards a target KL (ControlVAE, Shao et al. 2020).

    Each ``update(state, kl)`` takes the batch KL (nats, per sample), averages it over the
    last ``window`` finite values (:math:`\overline{KL}_t`; DynamicVAE uses about 10), and
    applies

    .. math::
        e_t &= KL^* - \overline{KL}_t, \qquad P_t = k_p / (1 + e^{e_t}) \\
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
      window: how many recent batch KLs to average, an integer >= 1 (1: the raw KL).

    Returns:
      A :class:`PIControl` over :class:`PIState`.

    Examples:
      >>> from kl_schedules.control import pi_controller
      >>> control = pi_controller(target_kl=3.0)
      >>> state = control.init()
      >>> state = control.update(state, 8.0)     # KL above target: beta rises
      >>> round(float(state.beta), 5)
      0.01043

    References:
      Shao et al., "ControlVAE: Controllable Variational Autoencoder", ICML 2020.
      Shao et al., "DynamicVAE: Decoupling Reconstruction Error and Disentangled
      Representation Learning", 2020 (the moving-average KL).
    """

    def init() -> PIState:
        dtype = float_dtype()
        return PIState(
            beta=jnp.asarray(params.beta_min, dtype),
            integral=jnp.zeros((), dtype),
            recent_kl=jnp.full((params.window,), jnp.nan, dtype),
        )

    def update(state: PIState, kl: ArrayLike) -> PIState:
        check_measurement_kind("kl", kl)
        kl = jnp.asarray(kl, float_dtype())
        valid = jnp.isfinite(kl)
        recent = jnp.where(valid, jnp.roll(state.recent_kl, 1).at[0].set(kl), state.recent_kl)
        seen = jnp.isfinite(recent)
        mean_kl = jnp.where(valid, jnp.where(seen, recent, 0.0).sum() / seen.sum(), kl)
        beta, integral = _pi_rule(state.beta, state.integral, mean_kl, params, JAX_MATH)
        return PIState(beta=beta, integral=integral, recent_kl=recent)

    return PIControl(init=init, update=update)


class PIController(HostObject):
    """Host twin of :func:`pi_controller` for PyTorch loops: plain Python, same numbers.

    ``controller.beta`` is a float (inside ``torch.compile``, a 0-d tensor holding it, so a
    compiled loss never recompiles as beta changes). Call :meth:`update` outside the
    compiled function; called inside, it runs eagerly (a graph break) and returns beta as
    a 0-d tensor, and with ``fullgraph=True`` tracing stops with an error saying so.

    ``state_dict()`` holds the settings, ``beta``, ``integral`` and ``recent_kl``; loading
    it keeps the host objects' contract (see :meth:`load_state_dict`; beta is checked
    against the bounds), and the whole object pickles.

    Examples:
      >>> from kl_schedules.control import PIController
      >>> controller = PIController(target_kl=3.0)
      >>> beta = controller.update(8.0)            # a float or a 0-d tensor (via float())
      >>> round(beta, 5)
      0.01043
    """

    settings_type = PISettings
    state_keys = ("beta", "integral")
    optional_state_keys = ("recent_kl",)

    _settings: PISettings

    @init_takes_settings(PISettings)
    def __init__(self, settings: PISettings) -> None:
        self._start(settings, settings.beta_min)
        self._integral = 0.0
        self._recent: deque[float] = deque(maxlen=settings.window)

    @property
    def integral(self) -> float:
        """The integral term :math:`I`."""
        return self._integral

    @property
    def recent_kl(self) -> list[float]:
        """The last ``window`` finite KL values fed to :meth:`update`, newest first."""
        return list(self._recent)

    @runs_eagerly_when_compiled
    def update(self, kl: Any) -> Any:
        """Feeds one batch KL (a number or 0-d tensor); returns the new beta."""
        kl = check_measured_float("kl", kl)
        if PY_MATH.isfinite(kl):
            self._recent.appendleft(kl)
            mean_kl = sum(self._recent) / len(self._recent)
            beta, self._integral = _pi_rule(
                self._beta, self._integral, mean_kl, self._settings, PY_MATH
            )
            self._set_beta(beta)
        return self._beta

    def _state(self) -> dict[str, Any]:
        return {"beta": self._beta, "integral": self._integral, "recent_kl": list(self._recent)}

    def _load(self, state: Any, settings: Any) -> None:
        beta = check_real("beta", state["beta"], settings.beta_min, settings.beta_max)
        integral = check_real("integral", state["integral"])
        recent = [check_real("recent_kl", v) for v in state.get("recent_kl", [])]
        if len(recent) > settings.window:
            raise ValueError(
                f"recent_kl must hold at most window={settings.window} values, got {recent}"
            )
        self._settings, self._integral = settings, integral  # all checked: commit
        self._recent = deque(recent, maxlen=settings.window)
        self._set_beta(beta)

"""PI control of beta towards a target KL (ControlVAE, Shao et al. 2020; DynamicVAE)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from kl_schedules._backend import JAX_MATH, PY_MATH, MathBackend, float_dtype
from kl_schedules._host import HostBeta
from kl_schedules._validation import check_count, check_keys, check_measurement, check_real

# Defaults, in one place for pi_controller and PIController (the reference gains).
K_P = 0.01
K_I = 1e-4
BETA_MIN = 0.0
BETA_MAX = 1.0
WINDOW = 1


class _PIParams(NamedTuple):
    target: float
    k_p: float
    k_i: float
    beta_min: float
    beta_max: float
    window: int


def _pi_params(
    target_kl: Any, k_p: Any, k_i: Any, beta_min: Any, beta_max: Any, window: Any
) -> _PIParams:
    params = _PIParams(
        target=check_real("target_kl", target_kl, 0.0),
        k_p=check_real("k_p", k_p, 0.0),
        k_i=check_real("k_i", k_i, 0.0),
        beta_min=check_real("beta_min", beta_min, 0.0),
        beta_max=check_real("beta_max", beta_max, 0.0),
        window=check_count("window", window, maximum=100_000),
    )
    if params.beta_max <= params.beta_min:
        raise ValueError(f"beta_max must be > beta_min, got {beta_max!r} <= {beta_min!r}")
    return params


def _pi_rule(beta: Any, integral: Any, kl: Any, p: _PIParams, xp: MathBackend) -> tuple[Any, Any]:
    r"""One PI step on a (filtered) KL; returns ``(beta, integral)``. Non-finite ``kl``
    leaves both unchanged.

    .. math::
        e &= KL^* - KL \\
        P &= k_p\, \sigma(-e) = k_p / (1 + e^{e}) \\
        I' &= I - k_i e \quad\text{(kept only if it leaves beta unsaturated: anti-windup)} \\
        \beta &= \mathrm{clip}(P + I' + \beta_{min},\ \beta_{min},\ \beta_{max})
    """
    error = p.target - kl
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


def pi_controller(
    target_kl: float,
    k_p: float = K_P,
    k_i: float = K_I,
    beta_min: float = BETA_MIN,
    beta_max: float = BETA_MAX,
    window: int = WINDOW,
) -> PIControl:
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
    params = _pi_params(target_kl, k_p, k_i, beta_min, beta_max, window)

    def init() -> PIState:
        dtype = float_dtype()
        return PIState(
            beta=jnp.asarray(params.beta_min, dtype),
            integral=jnp.zeros((), dtype),
            recent_kl=jnp.full((params.window,), jnp.nan, dtype),
        )

    def update(state: PIState, kl: ArrayLike) -> PIState:
        kl = jnp.asarray(kl, float_dtype())
        valid = jnp.isfinite(kl)
        recent = jnp.where(valid, jnp.roll(state.recent_kl, 1).at[0].set(kl), state.recent_kl)
        seen = jnp.isfinite(recent)
        mean_kl = jnp.where(valid, jnp.where(seen, recent, 0.0).sum() / seen.sum(), kl)
        beta, integral = _pi_rule(state.beta, state.integral, mean_kl, params, JAX_MATH)
        return PIState(beta=beta, integral=integral, recent_kl=recent)

    return PIControl(init=init, update=update)


class PIController(HostBeta):
    """Host twin of :func:`pi_controller` for PyTorch loops: plain Python, same numbers.

    ``controller.beta`` is a float (inside ``torch.compile``, a 0-d tensor holding it, so a
    compiled loss never recompiles as beta changes). The whole object pickles.
    ``load_state_dict`` checks that beta lies in ``[beta_min, beta_max]``.

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
        k_p: float = K_P,
        k_i: float = K_I,
        beta_min: float = BETA_MIN,
        beta_max: float = BETA_MAX,
        window: int = WINDOW,
    ) -> None:
        self._params = _pi_params(target_kl, k_p, k_i, beta_min, beta_max, window)
        self._integral = 0.0
        self._recent: deque[float] = deque(maxlen=self._params.window)
        self._set_beta(self._params.beta_min)

    @property
    def integral(self) -> float:
        """The integral term :math:`I`."""
        return self._integral

    @property
    def recent_kl(self) -> list[float]:
        """The last ``window`` finite KL values fed to :meth:`update`, newest first."""
        return list(self._recent)

    def update(self, kl: Any) -> float:
        """Feeds one batch KL (a number or 0-d tensor); returns the new beta."""
        kl = check_measurement("kl", kl)
        if PY_MATH.isfinite(kl):
            self._recent.appendleft(kl)
            mean_kl = sum(self._recent) / len(self._recent)
            beta, self._integral = _pi_rule(
                self._beta, self._integral, mean_kl, self._params, PY_MATH
            )
            self._set_beta(beta)
        return self._beta

    def _config(self) -> dict[str, Any]:
        p = self._params
        return {
            "target_kl": p.target,
            "k_p": p.k_p,
            "k_i": p.k_i,
            "beta_min": p.beta_min,
            "beta_max": p.beta_max,
            "window": p.window,
        }

    def state_dict(self) -> dict[str, Any]:
        """``{"beta", "integral", "recent_kl"}`` as plain, JSON-serialisable data."""
        return {"beta": self._beta, "integral": self._integral, "recent_kl": list(self._recent)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`, checking every entry (beta against the bounds)
        before changing anything."""
        p = self._params
        check_keys("state_dict", state, ("beta", "integral"), optional=("recent_kl",))
        beta = check_real("beta", state["beta"], p.beta_min, p.beta_max)
        integral = check_real("integral", state["integral"])
        recent = [check_real("recent_kl", v) for v in state.get("recent_kl", [])]
        if len(recent) > p.window:
            raise ValueError(f"recent_kl must hold at most window={p.window} values, got {recent}")
        self._integral, self._recent = integral, deque(recent, maxlen=p.window)
        self._set_beta(beta)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"PIController({args}, beta={self._beta!r})"

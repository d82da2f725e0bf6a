"""The host Annealer: the ``vae-annealing`` package's ``Annealer`` API in plain Python, with
its defects removed and no JAX call per step."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Generic, TypeVar, overload

import kl_schedules._torch_support as torch_support
from kl_schedules._annealing import annealer_step, annealer_weight
from kl_schedules._backend import PY_MATH
from kl_schedules._host import (
    HostObject,
    Settings,
    init_takes_settings,
    runs_eagerly_when_compiled,
    setting,
)
from kl_schedules._shapes import check_shape
from kl_schedules._validation import check_bool, check_count, check_real

_MEMO_MAX = 4096


def _check_annealer_shape(name: str, value: Any) -> str:
    return check_shape(value, allow_callable=False)  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class AnnealerSettings(Settings):
    """The settings of an :class:`Annealer`: its arguments, defaults and checks (see its
    Args)."""

    total_steps: int = setting(check_count)
    shape: str = setting(_check_annealer_shape, "linear")
    baseline: float = setting(partial(check_real, low=0.0, high=1.0), 0.0)
    cyclical: bool = setting(check_bool, False)
    disable: bool = setting(check_bool, False)


_T = TypeVar("_T")


class _AssignableSetting(Generic[_T]):
    """An Annealer attribute that reads a setting; assigning it replaces the setting
    (validated by :class:`AnnealerSettings`) and recomputes beta."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, annealer: None, owner: type) -> _AssignableSetting[_T]: ...
    @overload
    def __get__(self, annealer: Annealer, owner: type) -> _T: ...
    def __get__(self, annealer: Annealer | None, owner: type) -> Any:
        if annealer is None:
            return self
        return getattr(annealer._settings, self.name)

    def __set__(self, annealer: Annealer, value: _T) -> None:
        annealer._replace(**{self.name: value})


class Annealer(HostObject):
    r"""Stateful KL annealer with the ``vae-annealing`` package's API, defects removed.

    ``Annealer(total_steps, shape, baseline, cyclical, disable)`` multiplies a KL term by

    .. math:: w(s) = y(s)\,(1 - b) + b

    where ``y`` is ``s/T`` (linear), ``(1 - cos(pi s/T))/2`` (cosine) or
    ``1/(1 + exp(T/2 - s))`` (logistic, not rescaled), ``s`` = ``current_step`` and ``T`` =
    ``total_steps``. ``step()`` advances ``s`` by the rule of :func:`kl_schedules.annealing`;
    both run the same two functions (``annealer_step``, ``annealer_weight``), here in
    plain Python, with no JAX call per step.

    Every public attribute is validated on assignment, so beta always lies in
    ``[baseline, 1]``: ``current_step`` must be in ``[0, total_steps]``, and ``total_steps``
    cannot be set below ``current_step`` (set ``current_step`` first). Errors are
    ``ValueError`` (a wrong type raises an error that is both a ``TypeError`` and a
    ``ValueError``).

    Inside ``torch.compile``, ``annealer(kld)`` and ``annealer.beta`` read a 0-d tensor
    that ``step()`` updates in place, so a compiled step never recompiles as beta changes.
    Call ``step()`` outside the compiled function; called inside, it runs eagerly (a graph
    break: the compiled function becomes two graphs, with eager's numbers), and with
    ``fullgraph=True`` tracing stops with an error saying so.

    ``state_dict()`` holds the settings and ``current_step``; as every setting is also an
    assignable attribute, ``load_state_dict`` restores the saved settings with the step
    (``strict`` changes nothing here). The whole object pickles (``pickle``,
    ``copy.deepcopy``, ``torch.save``; ``torch.load`` with ``weights_only=True`` too).

    Args:
      total_steps: ``T``, an integer >= 1 (Python, NumPy or torch integer, or integral float).
      shape: ``"linear"``, ``"cosine"`` or ``"logistic"``.
      baseline: weight at step 0, in [0, 1].
      cyclical: wrap to step 0 on reaching ``total_steps``.
      disable: return the KL term unchanged.

    Examples:
      >>> from kl_schedules import Annealer
      >>> annealer = Annealer(total_steps=4, shape="linear", baseline=0.2)
      >>> annealer(10.0)
      2.0
      >>> annealer.step()
      >>> round(annealer.beta, 4)
      0.4
      >>> annealer.cyclical_setter = True   # vae-annealing's alias of set_cyclical(True)
      >>> annealer  # doctest: +ELLIPSIS
      Annealer(total_steps=4, shape='linear', baseline=0.2, cyclical=True, ...)
    """

    settings_type = AnnealerSettings
    state_keys = ("current_step",)
    settings_optional = False  # the Annealer's state_dict has always held its settings
    adopts_settings = True  # they are all assignable attributes: loading assigns them

    _settings: AnnealerSettings

    @init_takes_settings(AnnealerSettings)
    def __init__(self, settings: AnnealerSettings) -> None:
        self._start(settings, 0.0)
        self._step = 0
        self._configure()

    def _configure(self) -> None:
        """Rebuilds the weight function after a change of the settings."""
        settings = self._settings
        self._weight = annealer_weight(
            settings.total_steps, settings.shape, settings.baseline, PY_MATH
        )
        # For T <= 4096 (epoch-level annealers) each step's weight is computed once.
        self._memo: dict[int, float] | None = {} if settings.total_steps <= _MEMO_MAX else None
        self._sync()

    def _weight_at(self, step: int) -> float:
        memo = self._memo
        if memo is None:
            return self._weight(step)  # type: ignore[no-any-return]
        beta = memo.get(step)
        if beta is None:
            beta = memo[step] = self._weight(step)
        return beta

    def _sync(self) -> None:
        """Sets beta from the step: ``w(current_step)``, or 1.0 when disabled."""
        self._set_beta(1.0 if self._settings.disable else self._weight_at(self._step))

    def _replace(self, **changes: Any) -> None:
        """Replaces settings (validated by the settings' checks) and rebuilds the weight."""
        settings = dataclasses.replace(self._settings, **changes)
        if settings.total_steps < self._step:
            raise ValueError(
                f"total_steps must be >= current_step ({self._step}), got "
                f"{settings.total_steps}; set current_step first"
            )
        self._settings = settings
        self._configure()

    # ---- validated public attributes -----------------------------------------------------

    @property
    def current_step(self) -> int:
        """The step count ``s``, in ``[0, total_steps]``."""
        return self._step

    @current_step.setter
    def current_step(self, value: int) -> None:
        self._step = check_count(
            "current_step", value, minimum=0, maximum=self._settings.total_steps
        )
        self._sync()

    total_steps = _AssignableSetting[int]("``T``, an integer >= 1 and >= ``current_step``.")
    shape = _AssignableSetting[str]('``"linear"``, ``"cosine"`` or ``"logistic"``.')
    baseline = _AssignableSetting[float]("The weight at step 0, in [0, 1].")
    cyclical = _AssignableSetting[bool](
        "Whether ``step()`` wraps to 0 on reaching ``total_steps``."
    )
    disable = _AssignableSetting[bool](
        "When True, ``annealer(kld)`` returns ``kld`` unchanged and ``beta`` is 1."
    )

    # ---- the vae-annealing API -----------------------------------------------------------------

    def __call__(self, kld: Any) -> Any:
        """Returns ``kld * beta``; with ``disable=True``, ``kld`` itself (in compiled code,
        ``kld * 1.0``: the same numbers, and toggling ``disable`` does not recompile)."""
        if (
            not isinstance(kld, float)  # a float is never a tensor, nor compiled
            and torch_support.is_compiling()
            and torch_support.is_tensor(kld)
        ):
            return self._mirror.times(kld, self._beta)  # beta is 1.0 while disabled
        if self._settings.disable:
            return kld
        return kld * self._beta

    def step(self) -> None:
        """Advances one step: saturate at ``total_steps``, or wrap to 0 there when cyclical."""
        if torch_support.is_compiling():  # the per-step path: the decorator's check, inlined
            self._step_when_compiled()
            return
        settings = self._settings
        self._step = step = annealer_step(self._step, settings.total_steps, settings.cyclical)
        self._beta = beta = 1.0 if settings.disable else self._weight_at(step)
        if self._mirror.tensor is not None:  # _set_beta, inlined: this is the per-step path
            self._mirror.write(beta)

    _step_when_compiled = runs_eagerly_when_compiled(step)

    def set_cyclical(self, value: bool) -> None:
        """Turns cyclical mode on or off; takes effect at the next ``step()``."""
        self.cyclical = check_bool("value", value)

    @property
    def cyclical_setter(self) -> Any:
        """vae-annealing's alias: ``a.cyclical_setter(flag)`` or ``a.cyclical_setter = flag``."""
        return self.set_cyclical

    @cyclical_setter.setter
    def cyclical_setter(self, value: bool) -> None:
        self.set_cyclical(value)

    # ---- checkpoints -------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {"current_step": self._step}

    def _load(self, state: Any, settings: Any) -> None:
        step = check_count("current_step", state["current_step"], 0, settings.total_steps)
        self._settings, self._step = settings, step
        self._configure()

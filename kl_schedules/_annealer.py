"""The host-side Annealer: the documented PyTorch API, with no JAX on the per-step path."""

from __future__ import annotations

from typing import Any, TypeVar

from kl_schedules._annealing import check_shape_name, documented_weight
from kl_schedules._backend import PY_MATH
from kl_schedules._validation import check_bool, check_count, check_real

T = TypeVar("T")


class Annealer:
    r"""Stateful KL annealer with the documented ``vae-annealing`` API, defects removed.

    ``Annealer(total_steps, shape, baseline, cyclical, disable)`` multiplies a KL term by

    .. math:: w(s) = y(s)\,(1 - b) + b

    where ``y`` is ``s/T`` (linear), ``(1 - cos(pi s/T))/2`` (cosine) or
    ``1/(1 + exp(T/2 - s))`` (logistic, not rescaled), ``s`` = ``current_step`` and ``T`` =
    ``total_steps``. ``step()`` advances ``s`` by the rule of :func:`kl_schedules.annealing`
    and gives the same numbers, computed in plain Python (no JAX call per step).

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
      >>> annealer.cyclical_setter = True   # documented alias of set_cyclical(True)
      >>> annealer  # doctest: +ELLIPSIS
      Annealer(total_steps=4, shape='linear', baseline=0.2, cyclical=True, ...)
    """

    def __init__(
        self,
        total_steps: int,
        shape: str = "linear",
        baseline: float = 0.0,
        cyclical: bool = False,
        disable: bool = False,
    ) -> None:
        self._total_steps = check_count("total_steps", total_steps)
        self._shape = check_shape_name(shape, allow_callable=False)
        self._baseline = check_real("baseline", baseline, 0.0, 1.0)
        self.cyclical = check_bool("cyclical", cyclical)
        self.disable = check_bool("disable", disable)
        self.current_step = 0
        self._rebuild()

    def _rebuild(self) -> None:
        self._weight = documented_weight(self._total_steps, self._shape, self._baseline, PY_MATH)

    @property
    def total_steps(self) -> int:
        return self._total_steps

    @total_steps.setter
    def total_steps(self, value: int) -> None:
        self._total_steps = check_count("total_steps", value)
        self._rebuild()

    @property
    def shape(self) -> str:
        return self._shape  # type: ignore[return-value]

    @shape.setter
    def shape(self, value: str) -> None:
        self._shape = check_shape_name(value, allow_callable=False)
        self._rebuild()

    @property
    def baseline(self) -> float:
        return self._baseline

    @baseline.setter
    def baseline(self, value: float) -> None:
        self._baseline = check_real("baseline", value, 0.0, 1.0)
        self._rebuild()

    @property
    def beta(self) -> float:
        """The current weight ``w(current_step)`` (1.0 when disabled)."""
        return 1.0 if self.disable else self._weight(self.current_step)

    def __call__(self, kld: T) -> T:
        """Returns ``kld * beta``; with ``disable=True``, ``kld`` itself."""
        if self.disable:
            return kld
        return kld * self._weight(self.current_step)

    def step(self) -> None:
        """Advances one step: saturate at ``total_steps``, or wrap to 0 there when cyclical."""
        if self.current_step < self._total_steps:
            self.current_step += 1
        if self.cyclical and self.current_step >= self._total_steps:
            self.current_step = 0

    def set_cyclical(self, value: bool) -> None:
        """Turns cyclical mode on or off; takes effect at the next ``step()``."""
        self.cyclical = check_bool("value", value)

    @property
    def cyclical_setter(self) -> Any:
        """Documented alias: ``a.cyclical_setter(flag)`` or ``a.cyclical_setter = flag``."""
        return self.set_cyclical

    @cyclical_setter.setter
    def cyclical_setter(self, value: bool) -> None:
        self.set_cyclical(value)

    def state_dict(self) -> dict[str, Any]:
        """The complete state as plain, JSON-serialisable Python data."""
        return {
            "current_step": self.current_step,
            "total_steps": self._total_steps,
            "shape": self._shape,
            "baseline": self._baseline,
            "cyclical": self.cyclical,
            "disable": self.disable,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`, validating every entry."""
        missing = {"current_step", "total_steps", "shape", "baseline", "cyclical", "disable"}
        missing -= set(state_dict)
        if missing:
            raise ValueError(f"state_dict is missing keys {sorted(missing)}")
        total_steps = check_count("total_steps", state_dict["total_steps"])
        self._total_steps = total_steps
        self._shape = check_shape_name(state_dict["shape"], allow_callable=False)
        self._baseline = check_real("baseline", state_dict["baseline"], 0.0, 1.0)
        self.cyclical = check_bool("cyclical", state_dict["cyclical"])
        self.disable = check_bool("disable", state_dict["disable"])
        self.current_step = check_count(
            "current_step", state_dict["current_step"], minimum=0, maximum=total_steps
        )
        self._rebuild()

    def __repr__(self) -> str:
        return (
            f"Annealer(total_steps={self._total_steps}, shape={self._shape!r}, "
            f"baseline={self._baseline!r}, cyclical={self.cyclical}, disable={self.disable}, "
            f"current_step={self.current_step})"
        )

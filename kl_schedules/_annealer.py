"""The host-side Annealer: the documented PyTorch API, with no JAX on the per-step path."""

from __future__ import annotations

from typing import Any

from kl_schedules._annealing import documented_step, documented_weight
from kl_schedules._backend import PY_MATH
from kl_schedules._host import HostBeta, compiling
from kl_schedules._shapes import check_shape
from kl_schedules._validation import check_bool, check_count, check_keys, check_real

_MEMO_MAX = 4096
_STATE_KEYS = ("current_step", "total_steps", "shape", "baseline", "cyclical", "disable")


class Annealer(HostBeta):
    r"""Stateful KL annealer with the documented ``vae-annealing`` API, defects removed.

    ``Annealer(total_steps, shape, baseline, cyclical, disable)`` multiplies a KL term by

    .. math:: w(s) = y(s)\,(1 - b) + b

    where ``y`` is ``s/T`` (linear), ``(1 - cos(pi s/T))/2`` (cosine) or
    ``1/(1 + exp(T/2 - s))`` (logistic, not rescaled), ``s`` = ``current_step`` and ``T`` =
    ``total_steps``. ``step()`` advances ``s`` by the rule of :func:`kl_schedules.annealing`;
    both run the same two functions (``documented_step``, ``documented_weight``), here in
    plain Python, with no JAX call per step.

    Every public attribute is validated on assignment, so beta always lies in
    ``[baseline, 1]``: ``current_step`` must be in ``[0, total_steps]``, and ``total_steps``
    cannot be set below ``current_step`` (set ``current_step`` first). Errors are
    ``ValueError`` (a wrong type raises an error that is both a ``TypeError`` and a
    ``ValueError``).

    Inside ``torch.compile``, ``annealer(kld)`` and ``annealer.beta`` read a 0-d tensor
    that ``step()`` updates in place, so a compiled step never recompiles as beta changes.
    The whole object pickles (``pickle``, ``copy.deepcopy``, ``torch.save``).

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
        self._shape: str = check_shape(shape, allow_callable=False)  # type: ignore[assignment]
        self._baseline = check_real("baseline", baseline, 0.0, 1.0)
        self._cyclical = check_bool("cyclical", cyclical)
        self._disable = check_bool("disable", disable)
        self._step = 0
        self._configure()

    def _configure(self) -> None:
        """Rebuilds the weight function after a change of T, shape or baseline."""
        self._weight = documented_weight(self._total_steps, self._shape, self._baseline, PY_MATH)
        # For T <= 4096 (epoch-level annealers) each step's weight is computed once.
        self._memo: dict[int, float] | None = {} if self._total_steps <= _MEMO_MAX else None
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
        self._set_beta(self._weight_at(self._step))

    # ---- validated public attributes -----------------------------------------------------

    @property
    def current_step(self) -> int:
        """The step count ``s``, in ``[0, total_steps]``."""
        return self._step

    @current_step.setter
    def current_step(self, value: int) -> None:
        self._step = check_count("current_step", value, minimum=0, maximum=self._total_steps)
        self._sync()

    @property
    def total_steps(self) -> int:
        """``T``, an integer >= 1 and >= ``current_step``."""
        return self._total_steps

    @total_steps.setter
    def total_steps(self, value: int) -> None:
        value = check_count("total_steps", value)
        if value < self._step:
            raise ValueError(
                f"total_steps must be >= current_step ({self._step}), got {value}; "
                f"set current_step first"
            )
        self._total_steps = value
        self._configure()

    @property
    def shape(self) -> str:
        """``"linear"``, ``"cosine"`` or ``"logistic"``."""
        return self._shape

    @shape.setter
    def shape(self, value: str) -> None:
        self._shape = check_shape(value, allow_callable=False)  # type: ignore[assignment]
        self._configure()

    @property
    def baseline(self) -> float:
        """The weight at step 0, in [0, 1]."""
        return self._baseline

    @baseline.setter
    def baseline(self, value: float) -> None:
        self._baseline = check_real("baseline", value, 0.0, 1.0)
        self._configure()

    @property
    def cyclical(self) -> bool:
        """Whether ``step()`` wraps to 0 on reaching ``total_steps``."""
        return self._cyclical

    @cyclical.setter
    def cyclical(self, value: bool) -> None:
        self._cyclical = check_bool("cyclical", value)

    @property
    def disable(self) -> bool:
        """When True, ``annealer(kld)`` returns ``kld`` unchanged and ``beta`` is 1."""
        return self._disable

    @disable.setter
    def disable(self, value: bool) -> None:
        self._disable = check_bool("disable", value)
        self._write_mirror()

    def _effective_beta(self) -> float:
        return 1.0 if self._disable else self._beta

    # ---- the documented API ----------------------------------------------------------------

    @property
    def beta(self) -> Any:
        """The current weight ``w(current_step)``: a float (1.0 when disabled); inside
        ``torch.compile``, a 0-d tensor of torch's default dtype holding it."""
        if compiling() is not None:
            return self._compiled_beta()  # the mirror holds the effective beta
        return self._effective_beta()

    def __call__(self, kld: Any) -> Any:
        """Returns ``kld * beta``; with ``disable=True``, ``kld`` itself (in compiled code,
        ``kld * 1.0``: the same numbers, and toggling ``disable`` does not recompile)."""
        if not isinstance(kld, float):  # a float is never a tensor, nor compiled
            torch = compiling()
            if torch is not None and isinstance(kld, torch.Tensor):
                return self._times_beta(kld)  # the mirror holds 1.0 while disabled
        if self._disable:
            return kld
        return kld * self._beta

    def step(self) -> None:
        """Advances one step: saturate at ``total_steps``, or wrap to 0 there when cyclical."""
        self._step = step = documented_step(self._step, self._total_steps, self._cyclical)
        self._beta = self._weight_at(step)
        if self._mirror is not None:  # _set_beta, inlined: this is the per-step path
            self._write_mirror()

    def set_cyclical(self, value: bool) -> None:
        """Turns cyclical mode on or off; takes effect at the next ``step()``."""
        self._cyclical = check_bool("value", value)

    @property
    def cyclical_setter(self) -> Any:
        """Documented alias: ``a.cyclical_setter(flag)`` or ``a.cyclical_setter = flag``."""
        return self.set_cyclical

    @cyclical_setter.setter
    def cyclical_setter(self, value: bool) -> None:
        self.set_cyclical(value)

    # ---- checkpoints -------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {"total_steps": self._total_steps, "shape": self._shape}

    def state_dict(self) -> dict[str, Any]:
        """The complete state as plain, JSON-serialisable Python data."""
        return {
            "current_step": self._step,
            "total_steps": self._total_steps,
            "shape": self._shape,
            "baseline": self._baseline,
            "cyclical": self._cyclical,
            "disable": self._disable,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`, validating every entry before changing anything."""
        check_keys("state_dict", state_dict, _STATE_KEYS)
        total_steps = check_count("total_steps", state_dict["total_steps"])
        shape = check_shape(state_dict["shape"], allow_callable=False)
        baseline = check_real("baseline", state_dict["baseline"], 0.0, 1.0)
        cyclical = check_bool("cyclical", state_dict["cyclical"])
        disable = check_bool("disable", state_dict["disable"])
        step = check_count("current_step", state_dict["current_step"], 0, total_steps)
        self._total_steps, self._shape, self._baseline = total_steps, shape, baseline  # type: ignore[assignment]
        self._cyclical, self._disable, self._step = cyclical, disable, step
        self._configure()

    def __repr__(self) -> str:
        return (
            f"Annealer(total_steps={self._total_steps}, shape={self._shape!r}, "
            f"baseline={self._baseline!r}, cyclical={self._cyclical}, disable={self._disable}, "
            f"current_step={self._step})"
        )

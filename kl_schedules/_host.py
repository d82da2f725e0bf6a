"""What every host-side object (Annealer, PIController, GECO) shares: its beta as a Python
float, a 0-d torch mirror of it for ``torch.compile``, and pickling of the whole object.

Why a mirror. ``torch.compile`` treats a Python number that a compiled function reads
from a global object as a constant and guards on its value, so a beta that changes every
step would recompile every step (and, past the recompile limit, silently fall back to
eager; with ``fullgraph=True`` it raises). A 0-d tensor is guarded on its metadata only.
So the first time compiled code reads beta, the object makes a float64 0-d CPU tensor
holding it, writes every later change of beta into it in place (``fill_``), and hands it
to compiled code: ``obj.beta`` returns it (cast to torch's default dtype) and
``annealer(kld)`` multiplies by it, rounded exactly as eager ``kld * float`` rounds. A
disabled Annealer keeps 1.0 in its mirror, so toggling ``disable`` does not recompile either.
Eager code sees plain floats and never touches the mirror. torch is never imported here."""

from __future__ import annotations

import sys
from typing import Any


def _torch() -> Any:
    return sys.modules.get("torch")


def compiling() -> Any:
    """torch, while ``torch.compile`` traces the caller; None otherwise (and without torch)."""
    torch = _torch()
    return torch if torch is not None and torch.compiler.is_compiling() else None


def _new_mirror(value: float) -> Any:
    torch = _torch()
    if torch.compiler.is_compiling():  # made inside a trace: stored after the graph runs
        return torch.tensor(value, dtype=torch.float64)
    with torch.inference_mode(False):  # stays writable if made inside inference mode
        return torch.tensor(value, dtype=torch.float64)


_SAFE_GLOBALS_REGISTERED = False


def allow_in_weights_only_load() -> None:
    """Lets ``torch.load`` (``weights_only=True``, its default) rebuild our host objects.

    Their pickled state is plain data that ``__setstate__`` validates, so they are safe.
    Runs once torch is imported: when ``kl_schedules.torch`` is imported or an object is
    pickled.
    """
    global _SAFE_GLOBALS_REGISTERED
    torch = _torch()
    if _SAFE_GLOBALS_REGISTERED or torch is None:
        return
    _SAFE_GLOBALS_REGISTERED = True
    from kl_schedules._annealer import Annealer
    from kl_schedules.control import GECO, PIController

    torch.serialization.add_safe_globals([Annealer, PIController, GECO])


class HostBeta:
    """Mixin: a float ``_beta`` with its torch mirror; pickles as (config, state_dict).

    Subclasses call :meth:`_set_beta` whenever beta changes and implement ``_config()``
    (the constructor's keyword arguments), ``state_dict()`` and ``load_state_dict()``.
    The mirror is made the first time compiled code reads beta (so code that is never
    compiled never pays for it); from then on every change of beta is written into it.
    """

    _beta: float
    _mirror: Any = None

    def _set_beta(self, value: float) -> None:
        self._beta = value
        self._write_mirror()

    def _effective_beta(self) -> float:
        """What compiled code multiplies by (a subclass may override, e.g. 1.0 when off)."""
        return self._beta

    def _write_mirror(self) -> None:
        if self._mirror is not None:
            self._mirror.fill_(self._effective_beta())

    def _beta_tensor(self) -> Any:
        """The 0-d float64 mirror of the effective beta."""
        if self._mirror is None:
            self._mirror = _new_mirror(self._effective_beta())
        return self._mirror

    def _times_beta(self, tensor: Any) -> Any:
        """``tensor * beta`` from the mirror, with the numbers and dtype of eager
        ``tensor * float``: beta is rounded to the dtype torch computes in (float32 for
        float32, bfloat16 and float16 tensors, float64 for float64) and the result cast back
        (a 0-d tensor would otherwise promote)."""
        torch = _torch()
        compute = torch.float64 if tensor.dtype == torch.float64 else torch.float32
        return (tensor * self._beta_tensor().to(compute)).to(tensor.dtype)

    def _compiled_beta(self) -> Any:
        """What ``beta`` reads as inside ``torch.compile``: the mirror in torch's default
        dtype (so ``beta * kl`` keeps a float32 loss float32)."""
        return self._beta_tensor().to(_torch().get_default_dtype())

    @property
    def beta(self) -> Any:
        """The current beta: a Python float; inside ``torch.compile``, a 0-d tensor of
        torch's default dtype holding it."""
        return self._compiled_beta() if compiling() is not None else self._beta

    # ---- pickling: the whole object, as plain data, validated on the way in -------------

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        allow_in_weights_only_load()
        return {"config": self._config(), "state": self.state_dict()}

    def __setstate__(self, pickled: dict[str, Any]) -> None:
        self.__init__(**pickled["config"])  # type: ignore[misc]
        self.load_state_dict(pickled["state"])

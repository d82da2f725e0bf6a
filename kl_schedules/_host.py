"""What every host-side object (Annealer, PIController, GECO) shares: its beta as a Python
float, a 0-d torch mirror of it for ``torch.compile``, and pickling of the whole object.

Why a mirror. ``torch.compile`` treats a Python number that a compiled function reads
from a global object as a constant and guards on its value, so a beta that changes every
step would recompile every step (and, past the recompile limit, silently fall back to
eager; with ``fullgraph=True`` it raises). A 0-d tensor is guarded on its metadata only.
So each object keeps a float64 0-d CPU tensor, updated in place (``fill_``) whenever beta
changes, and hands it to code being compiled: ``obj.beta`` returns it (cast to torch's
default dtype) while ``torch.compile`` traces, and ``annealer(kld)`` multiplies a tensor by
it, in eager and compiled code alike, keeping ``kld``'s dtype. Eager ``obj.beta`` is a
plain float. torch is never imported here: the mirror exists only once torch is.
"""

from __future__ import annotations

import sys
from typing import Any


def _torch() -> Any:
    return sys.modules.get("torch")


def compiling() -> bool:
    """True while ``torch.compile`` traces the caller (False when torch is not imported)."""
    torch = _torch()
    return torch is not None and torch.compiler.is_compiling()


def _new_mirror(value: float) -> Any:
    torch = _torch()
    if torch is None:
        return None
    _allow_in_weights_only_load(torch)
    with torch.inference_mode(False):  # stays writable if made inside inference mode
        return torch.tensor(value, dtype=torch.float64)


_SAFE_GLOBALS_REGISTERED = False


def _allow_in_weights_only_load(torch: Any) -> None:
    """Lets ``torch.load`` (``weights_only=True``, its default) rebuild our host objects.

    Their pickled state is plain data that ``__setstate__`` validates, so they are safe.
    Runs once, when the first mirror is made or ``kl_schedules.torch`` is imported.
    """
    global _SAFE_GLOBALS_REGISTERED
    if _SAFE_GLOBALS_REGISTERED:
        return
    _SAFE_GLOBALS_REGISTERED = True
    from kl_schedules._annealer import Annealer
    from kl_schedules.control import GECO, PIController

    torch.serialization.add_safe_globals([Annealer, PIController, GECO])


class HostBeta:
    """Mixin: a float ``_beta`` with its torch mirror; pickles as (config, state_dict).

    Subclasses call :meth:`_set_beta` whenever beta changes and implement ``_config()``
    (the constructor's keyword arguments), ``state_dict()`` and ``load_state_dict()``.
    """

    _beta: float
    _mirror: Any = None

    def _set_beta(self, value: float) -> None:
        self._beta = value
        if self._mirror is None and "torch" in sys.modules:
            self._mirror = _new_mirror(value)
        elif self._mirror is not None:
            self._mirror.fill_(value)

    def _beta_tensor(self) -> Any:
        """The 0-d float64 mirror of beta (made on first use if torch came late)."""
        if self._mirror is None:
            self._mirror = _new_mirror(self._beta)
        return self._mirror

    def _beta_times(self, tensor: Any) -> Any:
        """``tensor * beta`` in ``tensor``'s dtype, for eager and compiled code alike."""
        return (tensor * self._beta_tensor()).to(tensor.dtype)

    def _compiled_beta(self) -> Any:
        """What ``beta`` reads as inside ``torch.compile``: the mirror in torch's default
        dtype (so ``beta * kl`` keeps a float32 loss float32)."""
        return self._beta_tensor().to(_torch().get_default_dtype())

    @property
    def beta(self) -> Any:
        """The current beta: a Python float; inside ``torch.compile``, a 0-d tensor of
        torch's default dtype holding it."""
        return self._compiled_beta() if compiling() else self._beta

    # ---- pickling: the whole object, as plain data, validated on the way in -------------

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self._config(), "state": self.state_dict()}

    def __setstate__(self, pickled: dict[str, Any]) -> None:
        self.__init__(**pickled["config"])  # type: ignore[misc]
        self.load_state_dict(pickled["state"])

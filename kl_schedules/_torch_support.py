"""What the host objects (Annealer, PIController, GECO) need from torch, without importing it.

Four things, each used only once torch is there: :func:`after_import` runs code as soon as
a module (torch, ``torch._dynamo``) finishes importing, whichever of it and kl_schedules the
user imported first; :func:`is_compiling` tells whether ``torch.compile`` is tracing the
caller; :class:`TorchBetaMirror` holds a host object's beta as a tensor for compiled code;
and :func:`run_outside_graph` makes ``torch.compile`` run a state-changing method eagerly
(a graph break) instead of tracing it. torch is never imported here.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import weakref
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

# ---- running code right after a module is imported ---------------------------------------


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    """A meta path finder that finds nothing itself: for a module with pending callbacks it
    asks the other finders for the spec and wraps the loader's ``exec_module`` so that the
    callbacks run once the module's body has run."""

    def __init__(self) -> None:
        self.pending: dict[str, list[Callable[[ModuleType], None]]] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        callbacks = self.pending.pop(fullname, None)
        if callbacks is None:
            return None
        spec = importlib.util.find_spec(fullname)  # the other finders (ours has no entry now)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_module_then_callbacks(module: ModuleType) -> None:
            exec_module(module)
            for callback in callbacks:
                callback(module)

        spec.loader.exec_module = exec_module_then_callbacks  # type: ignore[method-assign]
        return spec


_FINDER = _AfterImportFinder()


def after_import(name: str, callback: Callable[[ModuleType], None]) -> None:
    """Calls ``callback(module)`` now if module ``name`` is imported, else right after it is."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    _FINDER.pending.setdefault(name, []).append(callback)


# ---- whether torch.compile is tracing, and running a method outside its graph --------------


def _never() -> bool:
    return False


#: Whether torch.compile's dynamo is tracing the caller (False until torch is imported).
is_compiling: Callable[[], bool] = _never


def _call(method: Callable[..., Any], *args: Any) -> Any:
    return method(*args)


#: ``run_outside_graph(method, *args)`` calls ``method(*args)``. Once ``torch._dynamo`` is
#: imported (``torch.compile`` imports it before tracing), it is wrapped with
#: ``torch.compiler.disable``, so a compiled function that calls it breaks its graph there,
#: runs the method eagerly and resumes in a second graph; with ``fullgraph=True`` tracing
#: stops with an error that carries the reason below.
run_outside_graph: Callable[..., Any] = _call

_OUTSIDE_GRAPH_REASON = (
    "kl_schedules: Annealer.step(), PIController.update() and GECO.update() change Python "
    "state, so torch.compile runs them outside the graph (a graph break). With "
    "fullgraph=True, call them outside the compiled function (e.g. after optimizer.step())."
)


def _on_torch(torch: ModuleType) -> None:
    global is_compiling
    # is_dynamo_compiling is ``return False`` (dynamo reads it as True while tracing):
    # cheaper than is_compiling, and dynamo is what traces the host objects' Python.
    is_compiling = getattr(torch.compiler, "is_dynamo_compiling", torch.compiler.is_compiling)


#: Whether torch's compiler (``torch._dynamo``) is imported: from then on every
#: :class:`TorchBetaMirror` holds a tensor.
compiler_imported = False
# Mirrors made before that, each with a weak reference to its owner's beta reader.
_MIRRORS_WITHOUT_TENSOR: weakref.WeakKeyDictionary[
    TorchBetaMirror, weakref.WeakMethod[Callable[[], float]]
] = weakref.WeakKeyDictionary()


def _on_dynamo(_: ModuleType) -> None:
    global run_outside_graph, compiler_imported
    compiler_imported = True
    for mirror, weak_reader in list(_MIRRORS_WITHOUT_TENSOR.items()):
        read_beta = weak_reader()
        if mirror.tensor is None and read_beta is not None:
            mirror._make(read_beta())
    _MIRRORS_WITHOUT_TENSOR.clear()
    torch = sys.modules["torch"]
    try:
        run_outside_graph = torch.compiler.disable(_call, reason=_OUTSIDE_GRAPH_REASON)
    except TypeError:  # torch < 2.8 has no reason argument
        run_outside_graph = torch.compiler.disable(_call)


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor (False without torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


# ---- the tensor that compiled code reads beta from ---------------------------------------


class TorchBetaMirror:
    """A 0-d float64 CPU tensor holding a host object's beta, for ``torch.compile``.

    Why. ``torch.compile`` treats a Python number that a compiled function reads from a
    global object as a constant and guards on its value, so a beta that changes every step
    would recompile every step (past the recompile limit it silently falls back to eager;
    with ``fullgraph=True`` it raises). A 0-d tensor is guarded on its metadata only. So
    once ``torch._dynamo`` is imported (``torch.compile`` and Lightning import it), the
    tensor is made; the host object then :meth:`write` s every new beta into it in place
    (about 1 us), and compiled code reads it with :meth:`read` or multiplies by it with
    :meth:`times`. Programs that never import torch's compiler never make it.
    """

    def __init__(self, read_beta: Callable[[], float]) -> None:
        """``read_beta``, a bound method of the owner, reads the beta to mirror. The tensor
        is made as soon as torch's compiler is imported (now, if it is), so compiled code
        finds it there (no recompile when it appears) and never makes it while tracing."""
        self.tensor: Any = None
        if compiler_imported:
            self._make(read_beta())
        else:
            _MIRRORS_WITHOUT_TENSOR[self] = weakref.WeakMethod(read_beta)

    def _make(self, value: float) -> Any:
        torch = sys.modules["torch"]
        if torch.compiler.is_compiling():  # made inside a trace: stored after the graph runs
            self.tensor = torch.tensor(value, dtype=torch.float64)
        else:
            with torch.inference_mode(False):  # stays writable if made in inference mode
                self.tensor = torch.tensor(value, dtype=torch.float64)
        return self.tensor

    def write(self, value: float) -> None:
        """Holds ``value`` from now on (no-op until compiled code has read beta)."""
        tensor = self.tensor
        if tensor is None:
            return
        try:
            tensor.fill_(value)
        except RuntimeError:
            # Made by a compiled read under torch.inference_mode (a validation pass before
            # training): an inference tensor cannot be written outside that mode. Replace
            # it; compiled code recompiles once for the new, ordinary tensor.
            if not tensor.is_inference():
                raise
            self.tensor = None
            self._make(value)

    def _tensor(self, value: float) -> Any:
        return self._make(value) if self.tensor is None else self.tensor

    def read(self, value: float) -> Any:
        """The mirror of ``value`` in torch's default dtype (so ``beta * kl`` keeps a float32
        loss float32), made on first use."""
        torch = sys.modules["torch"]
        return self._tensor(value).to(torch.get_default_dtype())

    def times(self, tensor: Any, value: float) -> Any:
        """``tensor * value`` from the mirror, with the numbers and dtype of eager
        ``tensor * float``: the value is rounded to the dtype torch computes in (float32 for
        float32, bfloat16 and float16 tensors, float64 for float64) and the result cast back
        (a 0-d tensor would otherwise promote)."""
        torch = sys.modules["torch"]
        compute = torch.float64 if tensor.dtype == torch.float64 else torch.float32
        return (tensor * self._tensor(value).to(compute)).to(tensor.dtype)


after_import("torch", _on_torch)
after_import("torch._dynamo", _on_dynamo)

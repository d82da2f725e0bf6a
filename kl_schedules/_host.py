"""The contract every host object (Annealer, PIController, GECO) keeps: frozen settings,
one ``state_dict`` of settings and state, pickling through it, and a beta for torch.

* Settings: a frozen dataclass (a :class:`Settings` subclass) whose fields are the
  constructor's arguments, each validated once by the check in its metadata. ``repr``,
  ``state_dict``'s settings and pickling are derived from its fields.
* State: ``state_dict()`` returns the settings and the state as one flat dict of plain,
  JSON-serialisable data. ``load_state_dict(state_dict, strict=True)`` validates everything
  before changing anything; a state saved with other settings raises a ``ValueError``
  naming them, unless ``strict=False``, which adopts the saved settings. A state saved
  without settings (controllers before they were added) loads into the object's own.
* Pickling (``pickle``, ``copy``, ``torch.save``) stores the ``state_dict`` only.
  :func:`restore_host_object` rebuilds the object; it and every subclass are registered
  with torch's safe globals as soon as torch is imported (``torch.load`` with its default
  ``weights_only=True``), whatever the import order.
* Beta: a Python float, mirrored for ``torch.compile`` by a
  :class:`~kl_schedules._torch_support.TorchBetaMirror`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar, cast

import kl_schedules._torch_support as torch_support
from kl_schedules._validation import check_keys


def setting(check: Callable[[str, Any], Any], default: Any = dataclasses.MISSING) -> Any:
    """A :class:`Settings` field validated by ``check(name, value) -> value``."""
    return dataclasses.field(default=default, metadata={"check": check})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of a host object's frozen settings: each field is validated on construction by
    the ``check`` of its :func:`setting` (which may normalise it, e.g. ``np.int64`` to
    ``int``); :meth:`check_together` checks what involves several fields."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check = field.metadata.get("check")
            if check is not None:
                object.__setattr__(self, field.name, check(field.name, getattr(self, field.name)))
        self.check_together()

    def check_together(self) -> None:
        """Checks rules between fields (none by default)."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict, in declaration order."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, in declaration order."""
        return tuple(field.name for field in dataclasses.fields(cls))


_P = ParamSpec("_P")
_S = TypeVar("_S", bound=Settings)
_R = TypeVar("_R")
_H = TypeVar("_H")
_F = TypeVar("_F", bound=Callable[..., Any])


def _signature_of(
    settings_type: Callable[..., Settings], function: Callable[..., Any]
) -> inspect.Signature:
    """The settings' fields as parameters, with ``function``'s return annotation."""
    return inspect.signature(settings_type).replace(
        return_annotation=inspect.signature(function).return_annotation
    )


def takes_settings(
    settings_type: Callable[_P, _S],
) -> Callable[[Callable[[_S], _R]], Callable[_P, _R]]:
    """Turns ``factory(settings)`` into a function of the settings' fields, so the fields
    are the one list of the factory's arguments (its signature shows them)."""

    def decorate(factory: Callable[[_S], _R]) -> Callable[_P, _R]:
        @functools.wraps(factory)
        def from_fields(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            return factory(settings_type(*args, **kwargs))

        from_fields.__signature__ = _signature_of(settings_type, factory)  # type: ignore[attr-defined]
        return from_fields

    return decorate


def init_takes_settings(
    settings_type: Callable[_P, _S],
) -> Callable[[Callable[[_H, _S], None]], Callable[Concatenate[_H, _P], None]]:
    """:func:`takes_settings` for ``__init__(self, settings)``: the class is then called
    with the settings' fields."""

    def decorate(init: Callable[[_H, _S], None]) -> Callable[Concatenate[_H, _P], None]:
        @functools.wraps(init)
        def from_fields(self: _H, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
            init(self, settings_type(*args, **kwargs))

        signature = _signature_of(settings_type, init)
        self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        from_fields.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[self_parameter, *signature.parameters.values()]
        )
        return from_fields

    return decorate


def runs_eagerly_when_compiled(method: _F) -> _F:
    """Decorates a host object's method that changes its state (``step``, ``update``).

    Inside ``torch.compile`` the method runs eagerly, outside the graph (a graph break;
    with ``fullgraph=True`` tracing stops with an error saying so), and a method that
    returns beta returns it to the compiled caller as a new 0-d tensor (a float would be
    baked into the next graph as a constant). Elsewhere it is called as it is.
    """

    def eagerly(self: HostObject, *args: Any) -> Any:
        if method(self, *args) is None:
            return None
        return self._mirror.read(self._beta).clone()

    @functools.wraps(method)
    def wrapper(self: HostObject, *args: Any) -> Any:
        if torch_support.is_compiling():
            return torch_support.run_outside_graph(eagerly, self, *args)
        return method(self, *args)

    return cast(_F, wrapper)


_HOST_CLASSES: dict[str, type[HostObject]] = {}


def restore_host_object(module: str, name: str, state: dict[str, Any]) -> HostObject:
    """Rebuilds a pickled host object from its class's location and its ``state_dict``.

    Only classes that subclass :class:`HostObject` inside ``kl_schedules`` are built, from
    validated plain data, so torch may call this in a ``weights_only`` load.
    """
    key = f"{module}.{name}"
    if key not in _HOST_CLASSES and (
        module == "kl_schedules" or module.startswith("kl_schedules.")
    ):
        importlib.import_module(module)  # its classes register themselves on definition
    cls = _HOST_CLASSES.get(key)
    if cls is None:
        raise ValueError(f"not a kl_schedules host object: {key}")
    obj = cls.__new__(cls)
    obj._rebuild(state)
    return obj


def _allow_in_weights_only_load(*objects: Any) -> Callable[[ModuleType], None]:
    def register(torch: ModuleType) -> None:
        add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
        if add_safe_globals is not None:  # torch >= 2.4
            add_safe_globals(list(objects))

    return register


torch_support.after_import("torch", _allow_in_weights_only_load(restore_host_object))


class HostObject:
    """Base of the host objects: settings, the state contract, pickling and beta.

    A subclass sets ``settings_type`` (its :class:`Settings`), ``state_keys`` (the names of
    its state entries; ``optional_state_keys`` for those older state dicts lack), and
    implements :meth:`_state` and :meth:`_load` (validate a state dict against given
    settings, then commit it). Its ``__init__(self, settings)``, decorated with
    :func:`init_takes_settings`, calls :meth:`_start`; it calls :meth:`_set_beta` whenever
    beta changes, and decorates its state-changing methods with
    :func:`runs_eagerly_when_compiled`.
    """

    settings_type: ClassVar[type[Settings]]
    state_keys: ClassVar[tuple[str, ...]]
    optional_state_keys: ClassVar[tuple[str, ...]] = ()
    #: Whether a state dict without settings loads (into the object's own settings).
    settings_optional: ClassVar[bool] = True
    #: Whether loading adopts the saved settings even with ``strict=True`` (the Annealer,
    #: whose settings are all assignable attributes).
    adopts_settings: ClassVar[bool] = False

    _settings: Settings
    _beta: float
    _mirror: torch_support.TorchBetaMirror

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _HOST_CLASSES[f"{cls.__module__}.{cls.__qualname__}"] = cls
        # Checkpoints pickled before restore_host_object existed name the class itself.
        torch_support.after_import("torch", _allow_in_weights_only_load(cls))

    def _start(self, settings: Settings, beta: float) -> None:
        """Sets the settings, a fresh mirror and beta (for ``__init__``)."""
        self._settings = settings
        self._beta = beta
        self._mirror = torch_support.TorchBetaMirror(self._read_beta)

    def _read_beta(self) -> float:
        return self._beta

    def _set_beta(self, value: float) -> None:
        self._beta = value
        if self._mirror.tensor is not None:
            self._mirror.write(value)

    @property
    def beta(self) -> Any:
        """The current beta (an Annealer's ``w(current_step)``, 1.0 when disabled): a
        Python float; inside ``torch.compile``, a 0-d tensor of torch's default dtype."""
        if torch_support.is_compiling():
            return self._mirror.read(self._beta)
        return self._beta

    # ---- state ------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load(self, state: Mapping[str, Any], settings: Settings) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The settings and the state, as one flat dict of plain, JSON-serialisable data."""
        return {**self._settings.to_dict(), **self._state()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Restores a :meth:`state_dict`, validating every entry before changing anything.

        A state saved without settings (by earlier versions of the controllers) loads into
        this object's settings.

        Args:
          state_dict: a :meth:`state_dict` (settings and state).
          strict: with ``True``, a state saved with other settings raises a ``ValueError``
            naming them; with ``False``, the object adopts the saved settings.
        """
        names = self.settings_type.names()
        optional = (names if self.settings_optional else ()) + self.optional_state_keys
        required = self.state_keys if self.settings_optional else names + self.state_keys
        check_keys("state_dict", state_dict, required, optional=optional)
        given = [name for name in names if name in state_dict]
        if given and len(given) < len(names):
            missing = [name for name in names if name not in state_dict]
            raise ValueError(
                f"state_dict must hold all the settings {list(names)} or none; missing {missing}"
            )
        settings = self._settings
        if given:
            saved = self.settings_type(**{name: state_dict[name] for name in names})
            differ = [name for name in names if getattr(saved, name) != getattr(settings, name)]
            if differ and strict and not self.adopts_settings:
                details = ", ".join(
                    f"{name}={getattr(saved, name)!r} (this object: {getattr(settings, name)!r})"
                    for name in differ
                )
                raise ValueError(
                    f"state_dict was saved by a {type(self).__name__} with other settings: "
                    f"{details}; build the object with the saved settings, or pass "
                    f"strict=False to adopt them"
                )
            settings = saved
        self._load(state_dict, settings)

    def _rebuild(self, state: Mapping[str, Any]) -> None:
        """Initialises a bare object (``cls.__new__``) from a full :meth:`state_dict`."""
        names = self.settings_type.names()
        check_keys("state_dict", state, names + self.state_keys, self.optional_state_keys)
        self.__init__(**{name: state[name] for name in names})  # type: ignore[misc]
        self.load_state_dict(state)

    def __repr__(self) -> str:
        fields = {**self._settings.to_dict(), **self._state()}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"

    # ---- pickling: the state_dict, validated on the way in ---------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        cls = type(self)
        return restore_host_object, (cls.__module__, cls.__qualname__, self.state_dict())

    def __setstate__(self, pickled: dict[str, Any]) -> None:
        """Objects pickled by earlier versions: ``{"config": ..., "state": ...}``."""
        check_keys("pickled state", pickled, ("config", "state"))
        self.__init__(**pickled["config"])  # type: ignore[misc]
        self.load_state_dict(pickled["state"], strict=False)

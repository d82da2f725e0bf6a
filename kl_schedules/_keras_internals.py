"""Private: every use of a Keras 3 internal by :mod:`kl_schedules.keras`, in one place.

Each function says which internal it touches and why no public Keras API does the job, so
that a Keras upgrade that breaks one of them breaks here, and ``.ci/keras_oldest.sh`` runs
the Keras tests against the oldest Keras release the package declares.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def _unlocked(owner: Any) -> Iterator[Any]:
    """``owner._tracker``, unlocked for the duration (locked again if it was).

    Internal: ``Layer._tracker`` and its ``locked``/``lock``/``unlock``. Keras locks a
    built layer's tracker so that no state is added after ``build``; there is no public way
    to add a child to a built model, which is what the two functions below need.
    """
    tracker = owner._tracker
    was_locked = tracker.locked
    tracker.unlock()
    try:
        yield tracker
    finally:
        if was_locked:
            tracker.lock()


def add_child_layer(owner: Any, layer: Any) -> None:
    """Adds ``layer`` to ``owner``'s tracked layers, so its variables join the model's.

    Internal: ``Tracker.add_to_store("layers", ...)``. Assigning an attribute
    (``owner.x = layer``) is the public route, but it cannot be undone cleanly (``del``
    leaves the layer in the store in some releases) and it names an attribute on the
    user's model; the store is what ``Layer.variables`` reads.
    """
    with _unlocked(owner) as tracker:
        tracker.add_to_store("layers", layer)


def remove_child_layer(owner: Any, layer: Any) -> None:
    """Removes a layer added by :func:`add_child_layer`.

    Internal: ``Tracker.untrack``; Keras has no public way to detach a child layer.
    """
    with _unlocked(owner) as tracker:
        tracker.untrack(layer)


def sublayers(model: Any) -> list[Any]:
    """Every layer under ``model`` (not ``model`` itself), depth first.

    Internal: ``Layer._flatten_layers``. ``model.layers`` lists only the direct children
    (and, for a ``Sequential``, not the layer store that ``variables`` reads); the
    recursive walk is private.
    """
    return list(model._flatten_layers(include_self=False))


def track_variable(layer: Any, variable: Any) -> None:
    """Makes ``layer`` own an existing ``variable`` (created elsewhere, e.g. by the user).

    Internal: ``Layer._track_variable``. ``Layer.add_weight`` always creates a new
    variable; a layer cannot adopt one that exists (assigning it as an attribute would
    also work, but only before the layer is built).
    """
    layer._track_variable(variable)


def build_train_function(model: Any, train_step: Callable[..., Any]) -> Any:
    """The train function Keras builds for ``model`` when its ``train_step`` is
    ``train_step``; ``model.train_function`` and ``model.train_step`` are left as they were.

    Internals: ``Trainer.make_train_function(force=True)`` and the ``train_function``
    attribute it sets. ``train_step`` is the public hook for a custom step, but a callback
    cannot replace it in a model it does not own, and Keras builds (with JAX: traces and
    compiles) the train function from it once per ``compile``; building the function for
    the wrapped step directly is the only way to change the step of a running ``fit``.
    """
    previous = model.train_function
    own_step = vars(model).get("train_step")
    object.__setattr__(model, "train_step", train_step)
    try:
        model.make_train_function(force=True)
        return model.train_function
    finally:
        if own_step is None:
            object.__delattr__(model, "train_step")
        else:  # pragma: no cover - a train_step the user assigned on the instance
            object.__setattr__(model, "train_step", own_step)
        object.__setattr__(model, "train_function", previous)


def set_train_function(model: Any, function: Any) -> None:
    """Makes ``fit`` run ``function`` from its next step on.

    Internal: the ``train_function`` attribute. ``fit`` builds it before the first
    callback runs and then calls ``model.train_function`` for each step; no public API
    swaps it (see :func:`build_train_function`).
    """
    object.__setattr__(model, "train_function", function)


_LAST_SCHEDULED = "_kl_schedules_last_scheduled_train_function"


def remember_scheduled_function(model: Any, function: Any) -> None:
    """Keeps ``function`` on ``model`` for the next ``fit`` (see
    :func:`last_scheduled_function`).

    Internal: an attribute of our own set with ``object.__setattr__``, bypassing Keras's
    ``Layer.__setattr__``, which would track the value as model state. Keeping it on the
    model (not in a registry keyed by models) lets it die with the model.
    """
    object.__setattr__(model, _LAST_SCHEDULED, function)


def last_scheduled_function(model: Any) -> Any:
    """What :func:`remember_scheduled_function` kept on ``model``, or ``None``."""
    return vars(model).get(_LAST_SCHEDULED)


def batch_end_names_the_last_step() -> bool:
    """Whether ``on_train_batch_end(batch)`` gets the index of an execution's last step
    (Keras >= 3.11) rather than its first (3.10), with ``steps_per_execution > 1``.

    Not an internal: a documented-by-behaviour change between releases, read from
    ``keras.version()``.
    """
    import keras

    major, minor = (int(part) for part in keras.version().split(".")[:2])
    return (major, minor) >= (3, 11)


def nnx_enabled() -> bool:
    """Whether Keras runs on Flax NNX (then it calls ``type(model).train_step``).

    Internal: ``keras.src.backend.config.is_nnx_enabled`` (public only from 3.11 on, as
    ``keras.config.is_nnx_enabled``; absent before NNX support).
    """
    try:
        from keras.src.backend.config import is_nnx_enabled
    except ImportError:  # pragma: no cover - Keras releases without NNX
        return False
    return bool(is_nnx_enabled())

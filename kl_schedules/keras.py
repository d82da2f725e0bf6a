"""Keras 3 adapter: a callback that drives a non-trainable beta variable from a schedule.

Importing this module imports keras; ``import kl_schedules`` does not.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

try:
    import keras
except ImportError as error:  # pragma: no cover - exercised where keras is absent
    raise ImportError(
        "kl_schedules.keras needs Keras 3: pip install 'kl_schedules[keras]'"
    ) from error
import numpy as np

from kl_schedules._annealer import Annealer
from kl_schedules._describe import describe
from kl_schedules._schedules import schedule_values_from
from kl_schedules._validation import ArgumentTypeError, check_choice

__all__ = ["KLAnnealingCallback"]

_BLOCK = 4096  # schedule values computed per vectorised call

_UNTRACKED = (
    "with the JAX backend a compiled train step sees only the model's own variables, and "
    "beta could not be attached to this model ({reason}). Create beta inside the model "
    "instead: `self.beta = keras.Variable(0.0, trainable=False)` in a subclassed model's "
    "__init__, or `model.beta = keras.Variable(0.0, trainable=False)` on a built "
    "Sequential or functional model; read it in the loss, and pass `model.beta` to "
    "KLAnnealingCallback"
)


class _BetaHolder(keras.layers.Layer):
    """A weightless-looking layer that carries ``beta`` into a model's state during ``fit``.

    It is a child layer rather than a variable of the model itself, so a checkpoint written
    during ``fit`` still loads into a fresh model that has no such child.
    """

    def __init__(self, beta: keras.Variable) -> None:
        super().__init__(name="kl_schedules_beta", trainable=False)
        self._track_variable(beta)
        self.built = True


def _tracks(model: Any, variable: Any) -> bool:
    return any(v is variable for v in model.non_trainable_variables)


@contextlib.contextmanager
def _unlocked(owner: Any) -> Iterator[Any]:
    """``owner``'s variable tracker, unlocked for the duration (locked again if it was)."""
    tracker = owner._tracker
    was_locked = tracker.locked
    tracker.unlock()
    try:
        yield tracker
    finally:
        if was_locked:
            tracker.lock()


def _add_to_layer_store(owner: Any, holder: _BetaHolder) -> None:
    with _unlocked(owner) as tracker:
        tracker.add_to_store("layers", holder)


def _remove_from_layer_store(owner: Any, holder: _BetaHolder) -> None:
    with _unlocked(owner) as tracker:
        tracker.untrack(holder)


class KLAnnealingCallback(keras.callbacks.Callback):
    """Sets a non-trainable ``keras.Variable`` ``beta`` from a schedule during ``fit``.

    The loss must read ``beta`` (a variable), not a Python float: a float is frozen into
    the compiled train step. The variable may live anywhere, inside the model or outside
    it (a module-level ``beta`` read by a loss function). With the JAX backend a compiled
    step sees only the model's own state, so for the duration of ``fit`` the callback
    attaches an outside ``beta`` to the model (as a small child layer, removed at the end
    of training), before the train step is compiled. Outside ``fit`` the JAX backend reads
    an outside ``beta`` as a constant when it compiles, so to ``evaluate`` or ``predict``
    with a value assigned later, pass this callback to that call too (it attaches beta
    for its duration) or create beta inside the model.

    With ``update="batch"`` the schedule's step is the optimizer's iteration count, read
    before each execution of the train function: beta follows the optimizer, also with
    ``steps_per_execution > 1`` (beta is then constant within an execution of that many
    steps), and a resumed ``fit`` (a new callback, ``initial_epoch``, the same or a
    restored optimizer) continues the schedule where it was. With ``update="epoch"`` the
    step is the epoch index.

    Args:
      beta: a non-trainable scalar ``keras.Variable`` that the loss multiplies the KL by.
      schedule: any ``optax.Schedule`` (``step -> beta``; evaluated on the host in blocks of
        4096 steps, one vectorised call each, so no JAX dispatch per batch), or an
        :class:`~kl_schedules.Annealer`, which is stepped once per optimizer step
        (``"batch"``) or per epoch (``"epoch"``) and carries its own state: restore it with
        ``load_state_dict`` to resume.
      update: ``"batch"`` (step = optimizer iterations, the default) or ``"epoch"`` (step =
        epoch index).

    Examples:
      >>> import keras
      >>> from kl_schedules import monotonic_schedule
      >>> from kl_schedules.keras import KLAnnealingCallback
      >>> beta = keras.Variable(0.0, trainable=False, name="beta")
      >>> callback = KLAnnealingCallback(beta, monotonic_schedule(1000), update="batch")
    """

    def __init__(self, beta: keras.Variable, schedule: Any, update: str = "batch") -> None:
        super().__init__()
        if not isinstance(beta, keras.Variable):
            raise ArgumentTypeError(f"beta must be a keras.Variable, got {type(beta).__name__}")
        if beta.trainable:
            raise ValueError("beta must be a non-trainable keras.Variable (trainable=False)")
        if tuple(beta.shape) != ():
            raise ValueError(f"beta must be a scalar keras.Variable, got shape {beta.shape}")
        self.update = check_choice("update", update, ("batch", "epoch"))
        if not callable(schedule):
            raise ArgumentTypeError(
                f"schedule must be callable (step -> beta) or an Annealer, got "
                f"{type(schedule).__name__}"
            )
        self.beta = beta
        self.schedule = schedule
        self.step = 0
        self.last_beta = math.nan
        self._holder: _BetaHolder | None = None
        self._holder_owner: Any = None
        self._in_fit = False
        self._fit_checked = False
        self._last_iteration: int | None = None
        self._block_start = -1
        self._block = np.empty(0)

    # ---- making the compiled step see beta ------------------------------------------------

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        # Called when fit, evaluate or predict starts (fit's own validation reuses its
        # callbacks without calling it), so no earlier fit is running, even one that raised.
        self._in_fit = False
        # fit calls this before it builds its train function: attach beta now.
        if keras.backend.backend() == "jax" and not _tracks(model, self.beta):
            self._attach(model)

    def _attach(self, model: Any) -> None:
        """Adds a holder of beta to the model's layer store or, where that does not reach
        the model's variables (a ``Sequential`` keeps its own list of layers), to the store
        of the first of its layers where it does."""
        owners = [model] + [
            layer
            for layer in model._flatten_layers(include_self=False)
            if not isinstance(layer, keras.layers.InputLayer)
        ]
        reason = "it is still not among its variables"
        for owner in owners:
            holder = _BetaHolder(self.beta)
            try:
                _add_to_layer_store(owner, holder)
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                continue
            if _tracks(model, self.beta):
                self._holder, self._holder_owner = holder, owner
                return
            _remove_from_layer_store(owner, holder)
        raise ValueError(_UNTRACKED.format(reason=reason))

    def _detach(self) -> None:
        if self._holder is None:
            return
        _remove_from_layer_store(self._holder_owner, self._holder)
        self._holder = self._holder_owner = None

    # ---- the schedule -------------------------------------------------------------------

    def value_at(self, step: int) -> float:
        """The schedule's beta at ``step`` (from the cached block, refilled when needed)."""
        if isinstance(self.schedule, Annealer):
            return float(self.schedule.beta)
        offset = step - self._block_start
        if self._block_start < 0 or not 0 <= offset < len(self._block):
            self._block_start = step
            self._block = schedule_values_from(self.schedule, step, _BLOCK)
            offset = 0
        return float(self._block[offset])

    def _follow_optimizer(self, model: Any) -> int:
        """The optimizer's iteration count; an Annealer schedule is stepped to match it."""
        iteration = int(keras.ops.convert_to_numpy(model.optimizer.iterations.value))
        if isinstance(self.schedule, Annealer) and self._last_iteration is not None:
            for _ in range(max(0, iteration - self._last_iteration)):
                self.schedule.step()
        self._last_iteration = iteration
        return iteration

    def _set(self, step: int | None) -> None:
        model = self.model  # with JAX, syncs the trainer's state so the assignment is seen
        self.step = self._follow_optimizer(model) if step is None else step
        self.last_beta = self.value_at(self.step)
        self.beta.assign(self.last_beta)

    def on_train_begin(self, logs: Any = None) -> None:
        self._in_fit = True
        self._last_iteration = None
        if self.update == "batch":
            self.step = self._follow_optimizer(self.model)  # an Annealer is here now

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if self.update == "batch":
            self._set(None)

    def _warn_if_the_run_is_too_short(self, epoch: int) -> None:
        """Warns (once per callback) when the schedule cannot reach its final value before
        this ``fit`` ends, e.g. a warm-up longer than training."""
        self._fit_checked = True
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        if not epochs or (self.update == "batch" and not steps):
            return  # the run's length is unknown
        remaining = (epochs - epoch) * (steps if self.update == "batch" else 1)
        now = self.step if self.update == "batch" else epoch
        unit = "optimizer steps" if self.update == "batch" else "epochs"
        if isinstance(self.schedule, Annealer):
            needed = self.schedule.total_steps - self.schedule.current_step
            short = not self.schedule.cyclical and needed >= remaining
            what = f"{self.schedule!r} reaches its final value 1 (it needs {needed} more steps)"
        else:
            summary = describe(self.schedule, now + remaining)
            short = not summary.reaches_final
            what = f"{self.schedule!r} reaches its final value {summary.final_value:g}"
        if short:
            warnings.warn(
                f"KLAnnealingCallback: this fit ends after {now + remaining} {unit}, before {what}",
                UserWarning,
                stacklevel=2,
            )

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if not self._fit_checked:
            self._warn_if_the_run_is_too_short(epoch)
        if self.update == "epoch":
            self._set(epoch)  # a schedule of the epoch index (initial_epoch respected)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self.update == "epoch" and isinstance(self.schedule, Annealer):
            self.schedule.step()
        if logs is not None:
            logs["beta"] = self.last_beta

    def on_train_end(self, logs: Any = None) -> None:
        if self.update == "batch":
            self._follow_optimizer(self.model)  # count the steps of the last execution
        self._in_fit = False
        self._detach()

    def on_test_end(self, logs: Any = None) -> None:
        if not self._in_fit:  # passed to evaluate(): attached by set_model, until its end
            self._detach()

    def on_predict_end(self, logs: Any = None) -> None:
        self.on_test_end(logs)

"""Keras 3 adapter: a callback that drives a non-trainable beta variable from a schedule.

Importing this module imports keras; ``import kl_schedules`` does not.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from kl_schedules._annealer import Annealer
from kl_schedules._schedules import schedule_values_from

__all__ = ["KLAnnealingCallback"]

_BLOCK = 4096  # schedule values computed per vectorised call


class KLAnnealingCallback(keras.callbacks.Callback):
    """Sets a non-trainable ``keras.Variable`` ``beta`` from a schedule during ``fit``.

    The loss must read ``beta`` (a variable), not a Python float: a float is frozen into
    the compiled train step. With the JAX backend the variable must also be tracked by the
    model (e.g. an attribute of the model or of one of its layers), since a compiled JAX
    step sees only the model's own state; the callback checks this at ``on_train_begin``.

    Args:
      beta: a non-trainable ``keras.Variable`` (scalar) that the loss multiplies the KL by.
      schedule: any ``optax.Schedule`` (``step -> beta``; evaluated on the host in blocks of
        4096 steps, one vectorised call each, so no JAX dispatch per batch), or an
        :class:`~kl_schedules.Annealer` (its ``beta`` is used and ``step()`` called after
        each batch or epoch).
      update: ``"batch"`` (step = global batch count, the default) or ``"epoch"`` (step =
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
            raise TypeError(f"beta must be a keras.Variable, got {type(beta).__name__}")
        if beta.trainable:
            raise ValueError("beta must be a non-trainable keras.Variable (trainable=False)")
        if update not in ("batch", "epoch"):
            raise ValueError(f"update must be 'batch' or 'epoch', got {update!r}")
        if not callable(schedule):
            raise TypeError(
                f"schedule must be callable (step -> beta) or an Annealer, got "
                f"{type(schedule).__name__}"
            )
        self.beta = beta
        self.schedule = schedule
        self.update = update
        self.step = 0
        self.last_beta = float("nan")
        self._block_start = -1
        self._block = np.empty(0)

    def value_at(self, step: int) -> float:
        """The schedule's beta at ``step`` (from the cached block, refilled when needed)."""
        if isinstance(self.schedule, Annealer):
            return self.schedule.beta
        offset = step - self._block_start
        if self._block_start < 0 or not 0 <= offset < len(self._block):
            self._block_start = step
            self._block = schedule_values_from(self.schedule, step, _BLOCK)
            offset = 0
        return float(self._block[offset])

    def _set(self) -> None:
        _ = self.model  # with JAX, syncs the trainer's state so the assignment is seen
        self.last_beta = self.value_at(self.step)
        self.beta.assign(self.last_beta)

    def _advance(self) -> None:
        self.step += 1
        if isinstance(self.schedule, Annealer):
            self.schedule.step()

    def on_train_begin(self, logs: Any = None) -> None:
        if keras.backend.backend() == "jax":
            tracked = {id(v) for v in self.model.non_trainable_variables}
            if id(self.beta) not in tracked:
                raise ValueError(
                    "with the JAX backend, beta must be tracked by the model (assign it as an "
                    "attribute of the model or of a layer), or the compiled train step will "
                    "never see its new values"
                )

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if self.update == "batch":
            self._set()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.update == "batch":
            self._advance()

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if self.update == "epoch":
            self.step = epoch  # a schedule of the epoch index (initial_epoch respected)
            self._set()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self.update == "epoch" and isinstance(self.schedule, Annealer):
            self.schedule.step()
        if logs is not None:
            logs["beta"] = self.last_beta

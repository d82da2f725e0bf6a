"""Unit conversion: schedules written in epochs, evaluated on optimizer steps, and the reverse."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kl_schedules._backend import float_dtype
from kl_schedules._schedules import Schedule, Step, checked_step, from_dict
from kl_schedules._validation import ArgumentError, ArgumentTypeError, check_bool, check_count


@dataclasses.dataclass(frozen=True, repr=False)
class _Rescaled(Schedule):
    """A kl_schedules schedule read in other units: ``steps_per_epoch`` steps to an epoch."""

    schedule: Schedule
    steps_per_epoch: int

    def __post_init__(self) -> None:
        schedule = self.schedule
        if isinstance(schedule, dict):  # its to_dict() form, as from_dict passes it
            schedule = from_dict(schedule)
        if not isinstance(schedule, Schedule):
            raise ArgumentTypeError(
                f"schedule must be a kl_schedules schedule (e.g. monotonic_schedule(...)), "
                f"got {type(schedule).__name__}: {schedule!r}",
                argument="schedule",
            )
        self._set(
            schedule=schedule,
            steps_per_epoch=check_count("steps_per_epoch", self.steps_per_epoch),
        )


@dataclasses.dataclass(frozen=True, repr=False)
class EpochsOnSteps(_Rescaled):
    """A schedule of the epoch index, evaluated on optimizer steps; built by
    :func:`epochs_on_steps`, which documents it."""

    kind = "epochs_on_steps"
    factory = "epochs_on_steps"
    hold: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set(hold=check_bool("hold", self.hold))

    def __call__(self, step: Step) -> jax.Array:
        n = self.steps_per_epoch
        t: Any = checked_step(step)
        if isinstance(t, int):  # exact for any size: reduced on the host
            whole, rest = divmod(t, n)
            return self.schedule(whole if self.hold or rest == 0 else t / n)
        if jnp.issubdtype(t.dtype, jnp.integer):
            epoch = t // n
            if self.hold:
                return self.schedule(epoch)
            # At an epoch boundary the schedule gets the integer epoch, so its exact
            # endpoints stay exact under jit (where step / n is computed as step * (1/n)).
            within = t - epoch * n
            fraction = epoch.astype(float_dtype()) + within.astype(float_dtype()) / n
            return jnp.where(within == 0, self.schedule(epoch), self.schedule(fraction))
        epochs = jnp.asarray(t).astype(float_dtype()) / n
        return self.schedule(jnp.floor(epochs) if self.hold else epochs)


def epochs_on_steps(schedule: Schedule, steps_per_epoch: int, hold: bool = True) -> EpochsOnSteps:
    r"""A schedule written in epochs, evaluated on optimizer steps.

    .. math::
        \beta_{step}(t) = \beta_{epoch}(\lfloor t / n \rfloor) \quad (\texttt{hold=True}),
        \qquad \beta_{epoch}(t / n) \quad (\texttt{hold=False})

    with :math:`n` = ``steps_per_epoch``. ``hold=True`` keeps beta constant within an epoch,
    as the ``Annealer`` stepped once per epoch does; ``hold=False`` moves it
    every step along the same curve (the schedule is evaluated at fractional epochs).
    scvi-tools' ``n_epochs_kl_warmup`` is
    ``epochs_on_steps(monotonic_schedule(n_epochs), steps_per_epoch)``.

    Args:
      schedule: a kl_schedules schedule of the epoch index.
      steps_per_epoch: optimizer steps per epoch, an integer >= 1.
      hold: hold beta within each epoch (default) or interpolate.

    Returns:
      A :class:`Schedule` of the optimizer step.

    Examples:
      >>> from kl_schedules import epochs_on_steps, monotonic_schedule
      >>> warmup = epochs_on_steps(monotonic_schedule(4), steps_per_epoch=100)
      >>> [float(warmup(t)) for t in (0, 99, 100, 250, 400)]
      [0.0, 0.0, 0.25, 0.5, 1.0]
      >>> smooth = epochs_on_steps(monotonic_schedule(4), steps_per_epoch=100, hold=False)
      >>> float(smooth(250))
      0.625
    """
    return EpochsOnSteps(schedule, steps_per_epoch, hold)


@dataclasses.dataclass(frozen=True, repr=False)
class StepsOnEpochs(_Rescaled):
    """A schedule of the optimizer step, evaluated on epoch indices; built by
    :func:`steps_on_epochs`, which documents it."""

    kind = "steps_on_epochs"
    factory = "steps_on_epochs"

    def __call__(self, epoch: Step) -> jax.Array:
        n = self.steps_per_epoch
        e: Any = checked_step(epoch)
        if isinstance(e, int):  # exact for any size
            return self.schedule(e * n)
        if isinstance(e, np.ndarray) and e.dtype.kind in "iu":
            limit = (2**63 - 1) // n  # on the host: exact in int64, or an error
            if e.size and not -limit <= int(e.min()) <= int(e.max()) <= limit:
                raise ArgumentError(
                    f"epoch * steps_per_epoch ({n}) does not fit in int64", argument="step"
                )
            return self.schedule(e.astype(np.int64) * n)
        if jnp.issubdtype(e.dtype, jnp.integer):
            return _integer_epochs(self.schedule, e, n)
        return self.schedule(e * n)


def _integer_epochs(schedule: Schedule, epoch: jax.Array, n: int) -> jax.Array:
    """``schedule(epoch * n)`` for a JAX integer array, never wrapping around: in int64 when
    JAX has it, otherwise in uint32 (epochs >= 0) and int32 (epochs < 0); NaN where the
    step does not fit."""
    if epoch.dtype.itemsize > 4:  # int64 or uint64, with jax_enable_x64
        limit = (2**63 - 1) // n
        fits = epoch <= limit
        if jnp.issubdtype(epoch.dtype, jnp.signedinteger):
            fits &= epoch >= -limit
        wide = jnp.clip(epoch, -limit if epoch.dtype == jnp.int64 else 0, limit)
        return jnp.where(fits, schedule(wide.astype(jnp.int64) * n), jnp.nan)
    signed = jnp.issubdtype(epoch.dtype, jnp.signedinteger)
    int_type = jnp.int32 if signed else jnp.uint32
    epoch = epoch.astype(int_type)  # compare in 32 bits, against constants of that type
    top = int_type(min((2**32 - 1) // n, 2**31 - 1 if signed else 2**32 - 1))
    up = jnp.clip(epoch, int_type(0), top).astype(jnp.uint32) * jnp.uint32(n)  # n < 2**31
    beta = schedule(up)
    fits = epoch <= top
    if signed:
        bottom = jnp.int32(-(2**31 // n))
        down = jnp.clip(epoch, bottom, jnp.int32(0)) * jnp.int32(n)
        beta = jnp.where(epoch < 0, schedule(down), beta)
        fits &= epoch >= bottom
    return jnp.where(fits, beta, jnp.nan)


def steps_on_epochs(schedule: Schedule, steps_per_epoch: int) -> StepsOnEpochs:
    r"""The reverse: a schedule written in optimizer steps, evaluated once per epoch.

    .. math:: \beta_{epoch}(e) = \beta_{step}(e \cdot n)

    the beta at the first step of epoch ``e`` (:math:`n` = ``steps_per_epoch``), for code
    that sets beta once per epoch (a Keras callback with ``update="epoch"``, a plot in
    epochs). The product :math:`e \cdot n` never wraps around: Python integers are exact
    at any size, NumPy integers in int64 (past that, a ``ValueError``); a JAX integer epoch
    (as under ``jit``) computes the step in uint32 (int32 for negative epochs; int64 with
    ``jax_enable_x64``), and where it does not fit the result is NaN, not a wrapped step.

    Examples:
      >>> from kl_schedules import monotonic_schedule, steps_on_epochs
      >>> per_epoch = steps_on_epochs(monotonic_schedule(1000), steps_per_epoch=250)
      >>> [float(per_epoch(e)) for e in range(5)]
      [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    return StepsOnEpochs(schedule, steps_per_epoch)

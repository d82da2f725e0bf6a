"""Does a schedule fit the run? A summary of a schedule over ``num_steps`` steps."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from kl_schedules._schedules import (
    ConstantSchedule,
    CyclicalSchedule,
    MonotonicSchedule,
    schedule_values_from,
)
from kl_schedules._units import EpochsOnSteps, StepsOnEpochs
from kl_schedules._validation import check_count

_BLOCK = 2**20


@dataclasses.dataclass(frozen=True)
class ScheduleSummary:
    """What :func:`describe` found.

    Attributes:
      num_steps: the run's length in steps (``0 .. num_steps - 1``).
      final_value: the value the schedule settles at (``end``; for a constant, its value;
        for a schedule that is not ours, beta at the last step of the run).
      first_step_at_final: the first step of the run at which beta equals ``final_value``
        exactly, or ``None`` if it never does.
      cycles: cycles of a cyclical schedule that fit in the run (fractional; ``None`` if
        not cyclical).
      min: smallest beta over the run.
      max: largest beta over the run.
    """

    num_steps: int
    final_value: float
    first_step_at_final: int | None
    cycles: float | None
    min: float
    max: float

    @property
    def reaches_final(self) -> bool:
        """Whether beta reaches ``final_value`` before the run ends."""
        return self.first_step_at_final is not None

    def __str__(self) -> str:
        reach = (
            f"reaches {self.final_value:g} at step {self.first_step_at_final}"
            if self.reaches_final
            else f"never reaches {self.final_value:g} within {self.num_steps} steps"
        )
        cycles = "" if self.cycles is None else f", {self.cycles:g} cycles"
        return f"{reach}{cycles}; beta in [{self.min:g}, {self.max:g}]"


def _final_value(schedule: Any) -> float | None:
    if isinstance(schedule, ConstantSchedule):
        return schedule.value
    if isinstance(schedule, (MonotonicSchedule, CyclicalSchedule)):
        return schedule.end
    if isinstance(schedule, (EpochsOnSteps, StepsOnEpochs)):
        return _final_value(schedule.schedule)
    return None


def _cycles(schedule: Any, num_steps: float) -> float | None:
    if isinstance(schedule, CyclicalSchedule):
        cycles = num_steps / float(schedule.period)
        return cycles if schedule.num_cycles is None else min(cycles, schedule.num_cycles)
    if isinstance(schedule, EpochsOnSteps):
        return _cycles(schedule.schedule, num_steps / schedule.steps_per_epoch)
    if isinstance(schedule, StepsOnEpochs):
        return _cycles(schedule.schedule, num_steps * schedule.steps_per_epoch)
    return None


def describe(schedule: Any, num_steps: int) -> ScheduleSummary:
    """Summarises ``schedule`` over a run of ``num_steps`` steps (``0 .. num_steps - 1``).

    Reports when beta first reaches its final value (``None`` if it never does within the
    run: a warm-up longer than training), the number of cycles, and the min and max of
    beta. The schedule is evaluated at every step, in vectorised blocks.

    Args:
      schedule: a kl_schedules schedule, or any ``optax.Schedule``.
      num_steps: the run's length, an integer >= 1.

    Returns:
      A :class:`ScheduleSummary`.

    Examples:
      >>> from kl_schedules import cyclical_schedule, describe, monotonic_schedule
      >>> print(describe(monotonic_schedule(10_000), num_steps=8_000))
      never reaches 1 within 8000 steps; beta in [0, 0.7999]
      >>> summary = describe(cyclical_schedule(250, ratio=0.5), num_steps=1000)
      >>> summary.first_step_at_final, summary.cycles
      (125, 4.0)
    """
    num_steps = check_count("num_steps", num_steps, maximum=2**62)
    final = _final_value(schedule)
    if final is None:  # not ours: the value at the end of the run
        final = float(schedule_values_from(schedule, num_steps - 1, 1)[0])
    first_hit, low, high = None, np.inf, -np.inf
    for start in range(0, num_steps, _BLOCK):
        values = schedule_values_from(schedule, start, min(_BLOCK, num_steps - start))
        low, high = min(low, float(values.min())), max(high, float(values.max()))
        if first_hit is None:
            hits = np.flatnonzero(values == values.dtype.type(final))
            first_hit = None if len(hits) == 0 else start + int(hits[0])
    return ScheduleSummary(
        num_steps=num_steps,
        final_value=float(final),
        first_step_at_final=first_hit,
        cycles=_cycles(schedule, num_steps),
        min=low,
        max=high,
    )

"""Does a schedule fit the run? A summary of a schedule (or an Annealer) over a run."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from kl_schedules._annealer import Annealer
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
        for an ``Annealer``, its weight at ``total_steps``; for a schedule that is not
        ours, beta at the last step of the run).
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


@dataclasses.dataclass(frozen=True)
class _AnnealerRun:
    """The betas an :class:`~kl_schedules.Annealer` takes over a run from step 0.

    A copy of the annealer (its settings, cyclical mode and ``disable`` included; the
    annealer itself is untouched) is stepped once per distinct step count ``s`` the run
    visits (``0 .. T``, or ``0 .. T - 1`` when cyclical), recording its own ``beta``; step
    ``t`` of the run then has ``s = min(t, T)``, or ``t mod T`` when cyclical.
    """

    weights: np.ndarray  # beta at step count s
    total_steps: int
    cyclical: bool
    final: float  # beta at s = T, where a plain annealer settles

    @classmethod
    def of(cls, annealer: Annealer, num_steps: int) -> _AnnealerRun:
        total, cyclical = annealer.total_steps, annealer.cyclical
        twin = copy.deepcopy(annealer)
        twin.current_step = 0
        weights = np.empty(min(num_steps, total) if cyclical else min(num_steps - 1, total) + 1)
        for s in range(len(weights)):
            weights[s] = twin.beta
            twin.step()
        twin.current_step = total
        return cls(weights, total, cyclical, float(twin.beta))

    def values(self, first: int, count: int) -> np.ndarray:
        steps = np.arange(first, first + count, dtype=np.int64)
        total = self.total_steps
        return self.weights[steps % total if self.cyclical else np.minimum(steps, total)]


def run_values(schedule: Any, num_steps: int) -> Callable[[int, int], np.ndarray]:
    """``(first, count) -> beta`` at steps ``first .. first + count - 1`` of a run of
    ``num_steps`` steps, for a schedule (any ``optax.Schedule``) or an ``Annealer``."""
    if isinstance(schedule, Annealer):
        return _AnnealerRun.of(schedule, num_steps).values
    return lambda first, count: schedule_values_from(schedule, first, count)


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

    An :class:`~kl_schedules.Annealer` is described by the betas a copy of it takes from
    step 0 (the annealer itself is not changed): its final value is its weight at
    ``total_steps``, which a cyclical annealer never reaches; a cyclical annealer has
    ``num_steps / total_steps`` cycles. This costs about a microsecond per distinct step.

    Args:
      schedule: a kl_schedules schedule, any ``optax.Schedule``, or an ``Annealer``.
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
      >>> from kl_schedules import Annealer
      >>> print(describe(Annealer(total_steps=10, cyclical=True), num_steps=25))
      never reaches 1 within 25 steps, 2.5 cycles; beta in [0, 0.9]
    """
    num_steps = check_count("num_steps", num_steps, maximum=2**62)
    values_at: Callable[[int, int], np.ndarray]
    final: float | None
    if isinstance(schedule, Annealer):
        run = _AnnealerRun.of(schedule, num_steps)
        values_at, final = run.values, run.final
        cycles = num_steps / run.total_steps if run.cyclical else None
    else:
        values_at = run_values(schedule, num_steps)
        final, cycles = _final_value(schedule), _cycles(schedule, num_steps)
    if final is None:  # not ours: the value at the end of the run
        final = float(values_at(num_steps - 1, 1)[0])
    first_hit, low, high = None, np.inf, -np.inf
    final_value: float = final
    for start in range(0, num_steps, _BLOCK):
        values = values_at(start, min(_BLOCK, num_steps - start))
        low, high = min(low, float(values.min())), max(high, float(values.max()))
        if first_hit is None:
            hits = np.flatnonzero(values == values.dtype.type(final_value))
            first_hit = None if len(hits) == 0 else start + int(hits[0])
    return ScheduleSummary(
        num_steps=num_steps,
        final_value=float(final_value),
        first_step_at_final=first_hit,
        cycles=cycles,
        min=low,
        max=high,
    )

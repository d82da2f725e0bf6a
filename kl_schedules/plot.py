"""Plots a schedule with matplotlib (imported lazily: ``pip install kl_schedules[plot]``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kl_schedules._describe import run_values
from kl_schedules._extras import requires_extra
from kl_schedules._validation import check_count


def _pyplot() -> Any:
    with requires_extra("kl_schedules.plot", "matplotlib", "plot"):
        import matplotlib.pyplot as plt
    return plt


def schedule_values(schedule: Any, num_steps: int) -> np.ndarray:
    """beta at steps ``0 .. num_steps - 1`` of a schedule or an ``Annealer`` (vectorised)."""
    num_steps = check_count("num_steps", num_steps)
    return run_values(schedule, num_steps)(0, num_steps)


def plot_schedule(schedule: Any, num_steps: int, ax: Any = None, label: str | None = None) -> Any:
    """Plots ``schedule`` over ``num_steps`` steps and returns the matplotlib Axes.

    Args:
      schedule: any ``optax.Schedule`` (a kl_schedules schedule, or optax's own); an
        ``Annealer``, drawn as the betas a copy of it takes from step 0 (the annealer
        itself is not changed); or the betas themselves (a sequence of numbers).
      num_steps: how many steps to evaluate, from 0; an integer >= 1.
      ax: the Axes to draw on; a new figure's when omitted.
      label: legend label of the line.

    Returns:
      The Axes drawn on.

    Examples:
      >>> from kl_schedules import cyclical_schedule
      >>> from kl_schedules.plot import plot_schedule
      >>> ax = plot_schedule(cyclical_schedule(250, hold_start=0.25), 1000, label="cyclical")
      >>> len(ax.lines[0].get_ydata())
      1000
    """
    if callable(schedule):
        values = schedule_values(schedule, num_steps)
    else:
        values = np.asarray(schedule, dtype=float)[: check_count("num_steps", num_steps)]
    if ax is None:
        _, ax = _pyplot().subplots(figsize=(6, 3))
    ax.plot(np.arange(num_steps), values, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("beta")
    if label is not None:
        ax.legend()
    return ax

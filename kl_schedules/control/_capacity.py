"""Capacity annealing (Burgess et al. 2018): the schedule C(t) and ``gamma * |KL - C(t)|``."""

from __future__ import annotations

from typing import Any

from kl_schedules._schedules import MonotonicSchedule, monotonic_schedule
from kl_schedules._validation import check_real
from kl_schedules.control._kl import _framework, _number_for


def capacity_schedule(max_capacity: float, total_steps: int, delay: int = 0) -> MonotonicSchedule:
    r"""The capacity :math:`C(t)`, rising linearly from 0 to ``max_capacity`` nats.

    This is :func:`~kl_schedules.monotonic_schedule` with ``start=0, end=max_capacity``.

    Examples:
      >>> from kl_schedules.control import capacity_schedule
      >>> float(capacity_schedule(max_capacity=25.0, total_steps=100)(50))
      12.5
    """
    max_capacity = check_real("max_capacity", max_capacity, 0.0)
    return monotonic_schedule(total_steps, "linear", 0.0, max_capacity, delay)


def capacity_objective(kl: Any, capacity: Any, gamma: float = 1000.0) -> Any:
    r"""Capacity-annealing KL term (Burgess et al. 2018): :math:`\gamma\,|KL - C|`.

    ``loss = recon + capacity_objective(kl, C(t), gamma)``. Works on JAX, NumPy and torch
    values and Python numbers, mixed: the result has the kind (and float dtype) of ``kl``
    when it is an array or tensor, else of ``capacity``; the other must be a number or a
    0-d array (e.g. ``capacity_schedule(...)(step)``, a JAX value, with a torch ``kl``).

    Examples:
      >>> from kl_schedules.control import capacity_objective
      >>> capacity_objective(kl=12.0, capacity=12.5, gamma=1000.0)
      500.0
    """
    gamma = check_real("gamma", gamma, 0.0)
    if _framework(kl) is None and _framework(capacity) is not None:
        kl = _number_for("kl", kl, capacity)
    else:
        capacity = _number_for("capacity", capacity, kl)
    return gamma * abs(kl - capacity)

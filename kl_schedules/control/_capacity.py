"""Capacity annealing (Burgess et al. 2018): ``loss = recon + gamma * |KL - C(t)|``."""

from __future__ import annotations

from typing import Any

from kl_schedules._schedules import MonotonicSchedule, monotonic_schedule
from kl_schedules._validation import check_real


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

    ``loss = recon + capacity_objective(kl, C(t), gamma)``. Works on JAX/NumPy/torch values
    and Python floats, and returns the kind it is given.

    Examples:
      >>> from kl_schedules.control import capacity_objective
      >>> capacity_objective(kl=12.0, capacity=12.5, gamma=1000.0)
      500.0
    """
    gamma = check_real("gamma", gamma, 0.0)
    return gamma * abs(kl - capacity)

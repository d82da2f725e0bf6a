"""Feedback-controlled beta and KL regularisers, jit-ready, with host-side twins.

Each controller is a small immutable state plus pure functions (the pattern of
:func:`kl_schedules.annealing`), usable inside ``jax.jit`` / ``lax.scan``. Its update rule
is written once against a private math namespace and shared with a host class
(:class:`PIController`, :class:`GECO`) that runs it in plain Python, with no JAX call per
step, for PyTorch loops.

The KL helpers (:func:`gaussian_kl`, :func:`kl_per_dimension`, :func:`free_bits`,
:func:`active_units`, :func:`kl_balance`, :func:`capacity_objective`) are array-generic:
they take JAX, NumPy or torch arrays and return the same kind, and a 0-d number of any
kind (a Python or NumPy number, a JAX value such as a schedule's output, a 0-d tensor)
combines with an array of any kind, the result keeping the array's kind and float dtype.

Modules: ``_kl`` (KL helpers), ``_pi`` (PI control), ``_geco`` (GECO), ``_capacity``.
"""

from kl_schedules.control._capacity import capacity_objective, capacity_schedule
from kl_schedules.control._geco import GECO, GECOControl, GECOState, geco
from kl_schedules.control._kl import (
    active_units,
    free_bits,
    gaussian_kl,
    kl_balance,
    kl_per_dimension,
)
from kl_schedules.control._pi import PIControl, PIController, PIState, pi_controller

#: Either pure controller container (kept for code written against the first version).
FeedbackControl = PIControl | GECOControl

__all__ = [
    "GECO",
    "FeedbackControl",
    "GECOControl",
    "GECOState",
    "PIControl",
    "PIController",
    "PIState",
    "active_units",
    "capacity_objective",
    "capacity_schedule",
    "free_bits",
    "gaussian_kl",
    "geco",
    "kl_balance",
    "kl_per_dimension",
    "pi_controller",
]

"""kl_schedules: KL-divergence annealing (beta) schedules for VAEs, jit-ready.

``import kl_schedules`` needs only JAX and Optax; the adapters (``kl_schedules.torch``,
``kl_schedules.keras``, ``kl_schedules.plot``) import their frameworks lazily.
"""

from kl_schedules._annealer import Annealer
from kl_schedules._annealing import AnnealerState, Annealing, annealing
from kl_schedules._schedules import (
    Schedule,
    constant_schedule,
    cyclical_schedule,
    monotonic_schedule,
)
from kl_schedules._shapes import SHAPE_NAMES, cosine, linear, logistic

__version__ = "0.1.0"

__all__ = [
    "SHAPE_NAMES",
    "Annealer",
    "AnnealerState",
    "Annealing",
    "Schedule",
    "annealing",
    "constant_schedule",
    "cosine",
    "cyclical_schedule",
    "linear",
    "logistic",
    "monotonic_schedule",
]

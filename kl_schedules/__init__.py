"""kl_schedules: KL-divergence annealing (beta) schedules for VAEs, jit-ready.

``import kl_schedules`` needs only JAX and Optax; the adapters (``kl_schedules.torch``,
``kl_schedules.keras``, ``kl_schedules.numpyro``, ``kl_schedules.pyro``,
``kl_schedules.plot``) import their frameworks lazily.
"""

from kl_schedules._annealer import Annealer
from kl_schedules._annealing import AnnealerState, Annealing, annealing
from kl_schedules._describe import ScheduleSummary, describe
from kl_schedules._schedules import (
    ConstantSchedule,
    CyclicalSchedule,
    MonotonicSchedule,
    Schedule,
    constant_schedule,
    cyclical_schedule,
    from_dict,
    monotonic_schedule,
)
from kl_schedules._shapes import SHAPE_NAMES, cosine, linear, logistic
from kl_schedules._units import EpochsOnSteps, StepsOnEpochs, epochs_on_steps, steps_on_epochs
from kl_schedules._validation import ArgumentError, ArgumentTypeError
from kl_schedules._version import __version__

__all__ = [
    "SHAPE_NAMES",
    "Annealer",
    "AnnealerState",
    "Annealing",
    "ArgumentError",
    "ArgumentTypeError",
    "ConstantSchedule",
    "CyclicalSchedule",
    "EpochsOnSteps",
    "MonotonicSchedule",
    "Schedule",
    "ScheduleSummary",
    "StepsOnEpochs",
    "__version__",
    "annealing",
    "constant_schedule",
    "cosine",
    "cyclical_schedule",
    "describe",
    "epochs_on_steps",
    "from_dict",
    "linear",
    "logistic",
    "monotonic_schedule",
    "steps_on_epochs",
]

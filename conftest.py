"""Root conftest: environment for doctests and tests (before any framework import)."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")

# Doctests of an adapter need its framework: skip collecting them where it is absent.
import importlib.util

collect_ignore = [
    path
    for module, path in (
        ("torch", "kl_schedules/torch.py"),
        ("keras", "kl_schedules/keras.py"),
        ("numpyro", "kl_schedules/numpyro.py"),
        ("pyro", "kl_schedules/pyro.py"),
        ("lightning", "kl_schedules/lightning.py"),
    )
    if importlib.util.find_spec(module) is None
]

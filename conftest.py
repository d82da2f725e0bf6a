"""Root conftest: environment for doctests and tests (before any framework import)."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")

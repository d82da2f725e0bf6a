"""Random binary data shared by the Flax examples (no downloads)."""

from __future__ import annotations

import numpy as np


def random_binary_batches(seed: int, batch: int = 64, features: int = 64):
    """An endless stream of Bernoulli(0.3) batches, deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    while True:
        yield (rng.random((batch, features)) < 0.3).astype(np.float32)

"""Independent reference implementations, written from the formulas in docs/background.md.

They use float64 NumPy or plain Python and share no code with kl_schedules.
"""

from __future__ import annotations

import math

import numpy as np


def np_shape(name: str, p: np.ndarray, k: float = 12.0) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if name == "linear":
        return p
    if name == "cosine":
        return (1 - np.cos(np.pi * p)) / 2
    if name == "logistic":
        sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
        return (sig(k * (p - 0.5)) - sig(-k / 2)) / (sig(k / 2) - sig(-k / 2))
    raise AssertionError(name)


def np_monotonic(t, total, shape="linear", start=0.0, end=1.0, delay=0, k=12.0):
    t = np.asarray(t, dtype=np.float64)
    p = np.clip((t - delay) / total, 0, 1)
    return start + (end - start) * np_shape(shape, p, k)


def py_cyclical(t: int, num: int, den: int, ratio, shape="linear", start=0.0, end=1.0, k=12.0):
    """Exact Python-integer tau for period = num / den."""
    tau = ((t * den) % num) / num
    return float(start + (end - start) * np_shape(shape, np.array(min(tau / ratio, 1.0)), k))


class DocumentedAnnealer:
    """The documented vae-annealing Annealer, rewritten from its documented behaviour
    (docs/background.md, "The documented Annealer")."""

    def __init__(self, total_steps, shape="linear", baseline=0.0, cyclical=False, disable=False):
        self.current_step = 0
        self.total_steps = total_steps
        self.shape = shape
        self.baseline = baseline
        self.cyclical = cyclical
        self.disable = disable

    def slope(self):
        s, t = self.current_step, self.total_steps
        if self.shape == "linear":
            y = s / t
        elif self.shape == "cosine":
            y = (math.cos(math.pi * (s / t - 1)) + 1) / 2
        else:  # the original's math.exp; fine for the T < 1420 we compare on
            y = 1 / (1 + math.exp(t / 2 - s))
        return y * (1 - self.baseline) + self.baseline

    def __call__(self, kld):
        return kld if self.disable else kld * self.slope()

    def step(self):
        if self.current_step < self.total_steps:
            self.current_step += 1
        if self.cyclical and self.current_step >= self.total_steps:
            self.current_step = 0

    def set_cyclical(self, value):
        self.cyclical = value

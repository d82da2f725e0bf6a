"""Independent reference implementations, written from the formulas in docs/background.md,
and the few helpers several test files share (defined here once).

The references use float64 NumPy or plain Python and share no code with kl_schedules.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

SHAPES = ["linear", "cosine", "logistic"]
"""The named ramp shapes every schedule takes."""

actions_st = st.lists(
    st.one_of(st.just("step"), st.tuples(st.just("toggle"), st.booleans())), max_size=60
)
"""A run of an annealer: each action is ``"step"`` or ``("toggle", cyclical_flag)``."""


def sigmoid(x):
    """The logistic function 1 / (1 + e^-x), in float64."""
    return 1 / (1 + np.exp(-np.asarray(x, dtype=np.float64)))


def np_shape(name: str, p: np.ndarray, k: float = 12.0) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if name == "linear":
        return p
    if name == "cosine":
        return (1 - np.cos(np.pi * p)) / 2
    if name == "logistic":
        return (sigmoid(k * (p - 0.5)) - sigmoid(-k / 2)) / (sigmoid(k / 2) - sigmoid(-k / 2))
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


# ---- shared set-ups that drive kl_schedules' own objects ----------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    """The script ``examples/<name>.py`` imported as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses (flax.linen modules) look their module up
    spec.loader.exec_module(module)
    return module


def recorded_betas(make_annealer, num_steps):
    """A fresh annealer stepped ``num_steps`` times, its beta recorded before each step."""
    annealer = make_annealer()
    betas = []
    for _ in range(num_steps):
        betas.append(annealer.beta)
        annealer.step()
    return betas


def annealers():
    """Makers of a few differently configured host Annealers."""
    from kl_schedules import Annealer

    return [
        lambda: Annealer(10),
        lambda: Annealer(10, "cosine", baseline=0.2, cyclical=True),
        lambda: Annealer(7, "logistic", cyclical=True),
        lambda: Annealer(5, disable=True),
    ]


def advanced_host_objects():
    """An Annealer, a PIController and a GECO, each some steps into a run."""
    from kl_schedules import Annealer
    from kl_schedules.control import GECO, PIController

    annealer = Annealer(7, "logistic", baseline=0.2, cyclical=True)
    controller = PIController(target_kl=2.0, k_i=1e-2, window=3)
    geco_control = GECO(goal=1.0, step_size=0.05)
    for t in range(11):
        annealer.step()
        controller.update(4.0 - 0.1 * t)
        geco_control.update(1.5 - 0.05 * t)
    return annealer, controller, geco_control


def continue_run(annealer, controller, geco_control, steps=15):
    """Betas of the next ``steps`` steps of the three host objects, toggling the annealer on
    the way."""
    trace = []
    for t in range(steps):
        if t == 5:
            annealer.set_cyclical(False)
        trace.append((annealer.beta, annealer(2.0), controller.beta, geco_control.beta))
        annealer.step()
        controller.update(3.0 + 0.1 * t)
        geco_control.update(1.2 - 0.01 * t)
    return trace

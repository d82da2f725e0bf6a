"""The host Annealer's per-step cost (``step()`` + ``annealer(kld)``) against the class it
replaces: the popular vae-annealing ``Annealer``, rewritten here with the same structure
(the weight recomputed by ``slope()`` at every call), for a float and for a 0-d tensor on
the runner's torch device. Target: ratio <= 1.5."""

from __future__ import annotations

import math
import time
from typing import Any

from _harness import interleaved, median, synchronize, torch_device

from kl_schedules import Annealer

NAME = "host_annealer"
SIZES = {
    "full": {"calls": 100_000, "repeats": 15},
    "quick": {"calls": 20_000, "repeats": 7},
    "tiny": {"calls": 100, "repeats": 2},
}


class OriginalAnnealer:
    """The vae-annealing class's structure: plain attributes, weight recomputed per call."""

    def __init__(self, total_steps, shape="linear", baseline=0.0, cyclical=False):
        self.current_step, self.total_steps, self.shape = 0, total_steps, shape
        self.baseline, self.cyclical, self.disable = baseline, cyclical, False

    def __call__(self, kld):
        return kld if self.disable else kld * self.slope()

    def slope(self):
        s, total = self.current_step, self.total_steps
        if self.shape == "linear":
            y = s / total
        elif self.shape == "cosine":
            y = (math.cos(math.pi * (s / total - 1)) + 1) / 2
        else:
            y = 1 / (1 + math.exp(total / 2 - s))
        return self._add_baseline(y)

    def _add_baseline(self, y):
        return y * (1 - self.baseline) + self.baseline

    def step(self):
        if self.current_step < self.total_steps:
            self.current_step += 1
        if self.cyclical and self.current_step >= self.total_steps:
            self.current_step = 0


def run(mode: str) -> dict[str, Any]:
    calls, repeats = SIZES[mode]["calls"], SIZES[mode]["repeats"]
    device = torch_device()
    values: dict[str, Any] = {"float": 1.5}
    try:
        import torch

        values["torch_0d"] = torch.tensor(1.5, device=device)
    except ImportError:  # pragma: no cover
        pass
    results = {}
    for kind, value in values.items():
        objects = {
            "ours": Annealer(1000, "cosine", 0.1, cyclical=True),
            "original": OriginalAnnealer(1000, "cosine", 0.1, cyclical=True),
        }

        def timer(obj, value=value):
            def run_once():
                step = obj.step
                synchronize(device)
                start = time.perf_counter()
                for _ in range(calls):
                    step()
                    obj(value)
                synchronize(device)  # a tensor's products run asynchronously on a GPU
                return (time.perf_counter() - start) / calls

            return run_once

        samples = interleaved({k: timer(o) for k, o in objects.items()}, repeats)
        ours_t, base_t = median(samples["ours"]), median(samples["original"])
        results[f"{NAME}/{kind}"] = {
            "ratio": ours_t / base_t,
            "baseline": "the vae-annealing class's structure, same formula (step() + __call__)",
            "ns_per_call": ours_t * 1e9,
            "baseline_ns_per_call": base_t * 1e9,
            "device": "python float" if kind == "float" else device,
            "target": "<= 1.5",
        }
    return results

"""XLA compile time of the train step with each kind of beta, against constant beta."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from _harness import interleaved, median, seconds
from train_step_overhead import make_vae_step

NAME = "compile_time"
SIZES = {"full": {"repeats": 7}, "quick": {"repeats": 3}, "tiny": {"repeats": 1}}
KINDS = ("constant", "cyclical", "monotonic_logistic", "annealer_state")


def run(mode: str) -> dict[str, Any]:
    x = jnp.zeros((128, 784), jnp.float32)

    def compile_once(kind):
        def compile_fresh():
            step_fn, carry = make_vae_step(kind)  # a fresh function: no compilation cache hit
            jax.jit(step_fn).lower(carry, x).compile()

        return seconds(compile_fresh)

    samples = interleaved({k: compile_once(k) for k in KINDS}, SIZES[mode]["repeats"])
    base = median(samples["constant"])
    return {
        f"{NAME}/{kind}": {
            "ratio": median(samples[kind]) / base,
            "baseline": "compiling the same train step with constant beta",
            "seconds": median(samples[kind]),
            "baseline_seconds": base,
        }
        for kind in KINDS[1:]
    }

"""The examples run end to end in a quick mode, and log the betas the schedules define."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.reference import load_example as load


@pytest.mark.slow
def test_flax_linen_train_step_logs_cyclical_betas():
    pytest.importorskip("flax")
    log = load("flax_linen_train_step").main(["--steps", "8"])
    # period 8/4 = 2, ratio 0.5: the ramp ends at step 1 of each 2-step cycle
    np.testing.assert_allclose([row["beta"] for row in log], [0, 1] * 4, atol=1e-6)
    assert all(math.isfinite(row["loss"]) for row in log)


@pytest.mark.slow
def test_flax_nnx_train_step_logs_monotonic_betas_from_uint32_step():
    pytest.importorskip("flax")
    log = load("flax_nnx_train_step").main(["--steps", "12"])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = [
        (sig(12 * (p - 0.5)) - sig(-6)) / (sig(6) - sig(-6))
        for p in (min(max((t - 5) / 6, 0.0), 1.0) for t in range(12))
    ]
    np.testing.assert_allclose([row["beta"] for row in log], expected, atol=1e-6)
    assert all(math.isfinite(row["loss"]) for row in log)


def test_torch_vae_quick_follows_the_toggle_example():
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    history = load("torch_vae").main(["--quick"])
    betas = [row["beta"] for row in history]
    # cosine over T=10, cyclical to epoch 4, plain to 8, cyclical after: the step reaches
    # 10 after epoch 9 and, cyclical again, wraps to 0.
    steps = [*range(10), 0, 1]
    expected = [(1 - math.cos(math.pi * s / 10)) / 2 for s in steps]
    np.testing.assert_allclose(betas, expected, atol=1e-12)
    assert all(math.isfinite(row["recon"]) and row["kl"] >= 0 for row in history)

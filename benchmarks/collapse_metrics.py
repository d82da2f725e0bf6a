"""Is collapse monitoring cheap inside a jitted train step? An MLP-VAE step (Adam) that also
returns :func:`kl_schedules.diagnostics.collapse_metrics` of its batch (KL, KL per
dimension, active units, mutual information), against the same step without it.
Target: ratio <= 1.05."""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import optax
from _harness import in_fresh_processes, interleaved, median, paired_ratio

from kl_schedules.control import gaussian_kl
from kl_schedules.diagnostics import collapse_metrics

NAME = "collapse_metrics"
SIZES = {
    "full": {"processes": 5, "steps": 20, "repeats": 41},
    "quick": {"processes": 3, "steps": 20, "repeats": 7},
    "tiny": {"processes": 1, "steps": 2, "repeats": 2},
}
KINDS = ("without", "without_copy", "with_metrics")


def make_step(with_metrics: bool, features: int = 784, hidden: int = 256, latent: int = 32):
    """A jittable MLP-VAE train step (Adam, batch of binary images), returning the new
    carry and the loss, plus the batch's collapse metrics when ``with_metrics``."""
    from flax import linen as nn

    class VAE(nn.Module):
        @nn.compact
        def __call__(self, x, key):
            h = nn.relu(nn.Dense(hidden)(x))
            mu, logvar = jnp.split(nn.Dense(2 * latent)(h), 2, axis=-1)
            z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
            return nn.Dense(features)(nn.relu(nn.Dense(hidden)(z))), mu, logvar

    model, tx = VAE(), optax.adam(1e-3)

    def train_step(carry, x):
        params, opt_state, key = carry
        key, k_z, k_mi = jax.random.split(key, 3)

        def loss_fn(params):
            logits, mu, logvar = model.apply({"params": params}, x, k_z)
            recon = optax.sigmoid_binary_cross_entropy(logits, x).sum(-1).mean()
            return recon + gaussian_kl(mu, logvar).mean(), (mu, logvar)

        (loss, (mu, logvar)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        carry = (optax.apply_updates(params, updates), opt_state, key)
        if not with_metrics:
            return carry, {"loss": loss}
        return carry, {"loss": loss, **collapse_metrics(mu, logvar, key=k_mi)}

    key = jax.random.key(0)
    params = model.init(key, jnp.zeros((1, features)), key)["params"]
    return train_step, (params, tx.init(params), key)


def worker(mode: str) -> dict[str, list[float]]:
    """Seconds per train step for every kind, one sample per kind per interleaved round."""
    size = SIZES[mode]
    x = (jax.random.uniform(jax.random.key(1), (128, 784)) < 0.3).astype(jnp.float32)
    timers, carries = {}, {}
    for kind in KINDS:
        step_fn, carry = make_step(kind == "with_metrics")
        jitted = jax.jit(step_fn, donate_argnums=0)
        carries[kind] = jax.block_until_ready(jitted(carry, x)[0])

        def timer(kind=kind, jitted=jitted):
            carry = carries[kind]
            start = time.perf_counter()
            for _ in range(size["steps"]):
                carry, metrics = jitted(carry, x)
            carries[kind] = jax.block_until_ready(carry)
            jax.block_until_ready(metrics)
            return (time.perf_counter() - start) / size["steps"]

        timers[kind] = timer
    return interleaved(timers, size["repeats"])


def run(mode: str) -> dict[str, Any]:
    """Fresh processes (as ``train_step_overhead``); per process, the median over rounds of
    with / without from the same round; reported: the median over processes."""
    per_process = in_fresh_processes(NAME, mode, SIZES[mode]["processes"])
    ratios = {k: [paired_ratio(p, k, "without") for p in per_process] for k in KINDS[1:]}
    return {
        NAME: {
            "ratio": median(ratios["with_metrics"]),
            "baseline": "same jitted MLP-VAE step (784-256-32, batch 128) without the metrics",
            "aa_control_ratio": median(ratios["without_copy"]),
            "per_process_ratios": [round(r, 4) for r in ratios["with_metrics"]],
            "us_per_step": median([median(p["with_metrics"]) for p in per_process]) * 1e6,
            "baseline_us_per_step": median([median(p["without"]) for p in per_process]) * 1e6,
            "target": "<= 1.05",
        }
    }

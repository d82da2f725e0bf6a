"""A jitted Flax Linen ``TrainState`` step whose KL weight comes from a kl_schedules schedule.

beta = cyclical_schedule(...)(state.step) is computed *inside* the jitted step, from the
integer step counter, and returned for logging.

    python examples/flax_linen_train_step.py --steps 40
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax.training import train_state

sys.path.insert(0, os.path.dirname(__file__))
from _vae_data import random_binary_batches

from kl_schedules import cyclical_schedule
from kl_schedules.control import gaussian_kl


class VAE(nn.Module):
    latent: int = 4
    features: int = 64

    @nn.compact
    def __call__(self, x, key):
        h = nn.relu(nn.Dense(64)(x))
        mu, logvar = nn.Dense(self.latent)(h), nn.Dense(self.latent)(h)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        logits = nn.Dense(self.features)(nn.relu(nn.Dense(64)(z)))
        return logits, mu, logvar


def vae_terms(logits, x, mu, logvar):
    """Per-sample-summed Bernoulli reconstruction and Gaussian KL, batch mean."""
    recon = optax.sigmoid_binary_cross_entropy(logits, x).sum(-1).mean()
    kl = gaussian_kl(mu, logvar).mean()
    return recon, kl


def make_train_step(beta_schedule):
    @jax.jit
    def train_step(state: train_state.TrainState, x, key):
        beta = beta_schedule(state.step)  # traced integer step -> float32 beta, in the jit

        def loss_fn(params):
            logits, mu, logvar = state.apply_fn({"params": params}, x, key)
            recon, kl = vae_terms(logits, x, mu, logvar)
            return recon + beta * kl, (recon, kl)

        (loss, (recon, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        metrics = {"beta": beta, "loss": loss, "recon": recon, "kl": kl}
        return state.apply_gradients(grads=grads), metrics

    return train_step


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = VAE()
    key = jax.random.key(args.seed)
    params = model.init(key, jnp.zeros((1, 64)), key)["params"]
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(1e-3))
    # 4 cycles over the run, ramping for the first half of each (Fu et al.'s M=4, R=0.5)
    train_step = make_train_step(cyclical_schedule(period=args.steps / 4, ratio=0.5))

    log = []
    for step, x in zip(range(args.steps), random_binary_batches(args.seed), strict=False):
        state, metrics = train_step(state, jnp.asarray(x), jax.random.fold_in(key, step))
        row = {name: float(value) for name, value in metrics.items()}
        log.append(row)
        print(f"step {step:3d}  " + "  ".join(f"{k} {v:8.4f}" for k, v in row.items()))
    return log


if __name__ == "__main__":
    main()

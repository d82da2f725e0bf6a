"""An ``nnx.jit`` train step whose KL weight comes from a kl_schedules schedule.

``nnx.Optimizer.step`` is a uint32 counter: the schedule takes it as it is (no cast, no
wrap-around), inside the jitted step.

    python examples/flax_nnx_train_step.py --steps 40
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import optax
from flax import nnx

sys.path.insert(0, os.path.dirname(__file__))
from _vae_data import random_binary_batches

from kl_schedules import monotonic_schedule
from kl_schedules.control import gaussian_kl


class VAE(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, features: int = 64, hidden: int = 64, latent: int = 4):
        self.encoder = nnx.Linear(features, hidden, rngs=rngs)
        self.to_mu = nnx.Linear(hidden, latent, rngs=rngs)
        self.to_logvar = nnx.Linear(hidden, latent, rngs=rngs)
        self.decoder_hidden = nnx.Linear(latent, hidden, rngs=rngs)
        self.decoder_out = nnx.Linear(hidden, features, rngs=rngs)

    def __call__(self, x, key):
        h = nnx.relu(self.encoder(x))
        mu, logvar = self.to_mu(h), self.to_logvar(h)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        return self.decoder_out(nnx.relu(self.decoder_hidden(z))), mu, logvar


def make_train_step(beta_schedule):
    @nnx.jit
    def train_step(model: VAE, optimizer: nnx.Optimizer, x, key):
        beta = beta_schedule(optimizer.step[...])  # uint32 step, inside the jit

        def loss_fn(model):
            logits, mu, logvar = model(x, key)
            recon = optax.sigmoid_binary_cross_entropy(logits, x).sum(-1).mean()
            kl = gaussian_kl(mu, logvar).mean()
            return recon + beta * kl, (recon, kl)

        (loss, (recon, kl)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        return {"beta": beta, "loss": loss, "recon": recon, "kl": kl}

    return train_step


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = VAE(nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    # logistic warm-up over the first half, after a 5-step delay at beta = 0
    schedule = monotonic_schedule(total_steps=args.steps // 2, shape="logistic", delay=5)
    train_step = make_train_step(schedule)

    key = jax.random.key(args.seed)
    log = []
    for step, x in zip(range(args.steps), random_binary_batches(args.seed), strict=False):
        metrics = train_step(model, optimizer, jnp.asarray(x), jax.random.fold_in(key, step))
        row = {name: float(value) for name, value in metrics.items()}
        log.append(row)
        print(f"step {step:3d}  " + "  ".join(f"{k} {v:8.4f}" for k, v in row.items()))
    return log


if __name__ == "__main__":
    main()

"""A Keras 3 VAE on scikit-learn digits with the three modes of the Keras reference:
constant, monotonic and cyclical beta, driven by ``KLAnnealingCallback``.

The KL weight is a non-trainable ``keras.Variable`` owned by the model and read by the
loss inside the compiled train step; the callback sets it at each batch.

    KERAS_BACKEND=jax python examples/keras_vae.py [--epochs 10]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np
from keras import layers, ops
from sklearn.datasets import load_digits

from kl_schedules import constant_schedule, cyclical_schedule, monotonic_schedule
from kl_schedules.keras import KLAnnealingCallback


class VAE(keras.Model):
    def __init__(self, features: int = 64, hidden: int = 128, latent: int = 8, seed: int = 0):
        super().__init__()
        self.encoder = keras.Sequential(
            [layers.Dense(hidden, activation="relu"), layers.Dense(2 * latent)]
        )
        self.decoder = keras.Sequential(
            [layers.Dense(hidden, activation="relu"), layers.Dense(features)]
        )
        self.beta = keras.Variable(0.0, trainable=False, name="beta")  # tracked by the model
        self.noise = keras.random.SeedGenerator(seed)

    def call(self, x):
        mu, logvar = ops.split(self.encoder(x), 2, axis=-1)
        z = mu + ops.exp(0.5 * logvar) * keras.random.normal(ops.shape(mu), seed=self.noise)
        return self.decoder(z), mu, logvar

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
        logits, mu, logvar = y_pred
        recon = ops.sum(ops.binary_crossentropy(x, logits, from_logits=True), axis=-1)
        kl = -0.5 * ops.sum(1.0 + logvar - mu**2 - ops.exp(logvar), axis=-1)
        return ops.mean(recon + self.beta * kl)  # beta read from the variable, not a float

    def kl_and_recon(self, x):
        logits, mu, logvar = self(x)
        kl = -0.5 * ops.sum(1.0 + logvar - mu**2 - ops.exp(logvar), axis=-1)
        recon = ops.sum(ops.binary_crossentropy(x, logits, from_logits=True), axis=-1)
        return float(ops.mean(kl)), float(ops.mean(recon))


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = (load_digits().data / 16.0).astype("float32")
    batch = 128
    steps = args.epochs * int(np.ceil(len(data) / batch))
    modes = {
        "constant": constant_schedule(1.0),
        "monotonic": monotonic_schedule(total_steps=steps // 2),
        "cyclical": cyclical_schedule(period=steps / 4, ratio=0.5),
    }
    results = {}
    for mode, schedule in modes.items():
        keras.utils.set_random_seed(args.seed)
        model = VAE(seed=args.seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        callback = KLAnnealingCallback(model.beta, schedule, update="batch")
        history = model.fit(
            data, epochs=args.epochs, batch_size=batch, verbose=0, callbacks=[callback]
        )
        kl, recon = model.kl_and_recon(data)
        results[mode] = {
            "loss": history.history["loss"][-1],
            "beta": history.history["beta"][-1],
            "kl": kl,
            "recon": recon,
            "betas": history.history["beta"],
        }
        print(
            f"{mode:10s} final beta {results[mode]['beta']:.3f}  loss "
            f"{results[mode]['loss']:7.2f}  recon {recon:7.2f}  KL {kl:6.2f}",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()

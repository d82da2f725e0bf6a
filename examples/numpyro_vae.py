"""A NumPyro VAE on binarised 8x8 digits, its KL term annealed by a kl_schedules schedule.

The model and the guide are wrapped by ``kl_schedules.numpyro.annealed(..., ["z"])``, so
``svi.update(state, x, beta=beta)`` optimises recon + beta * KL. beta = schedule(step) is
computed inside the jitted step from the step number, which is an argument: the step is
traced once and beta changes every step. The data are scikit-learn's ``load_digits``
(shipped in the wheel, no download), pixels > 7 of 16 set to 1.

    python examples/numpyro_vae.py                        # 600 steps, cyclical beta
    python examples/numpyro_vae.py --schedule monotonic --steps 300
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO
from sklearn.datasets import load_digits

from kl_schedules import cyclical_schedule, monotonic_schedule
from kl_schedules.numpyro import annealed


def binary_digits() -> np.ndarray:
    """The 1797 8x8 digits as float32 rows of 64 pixels in {0, 1}."""
    return (load_digits().data > 7).astype(np.float32)


def dense(name: str, x, n_in: int, n_out: int):
    """An affine layer whose weights are NumPyro params (initialised from the SVI seed)."""
    w = numpyro.param(f"{name}.w", lambda key: jax.random.normal(key, (n_in, n_out)) / n_in**0.5)
    b = numpyro.param(f"{name}.b", jnp.zeros(n_out))
    return x @ w + b


def make_vae(features: int, latent: int = 8, hidden: int = 128):
    """The model p(z) p(x | z) and the amortised guide q(z | x), as plain NumPyro functions."""

    def model(x):
        with numpyro.plate("batch", x.shape[0]):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(latent), 1.0).to_event(1))
            h = jax.nn.relu(dense("decoder.hidden", z, latent, hidden))
            logits = dense("decoder.out", h, hidden, features)
            numpyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    def guide(x):
        h = jax.nn.relu(dense("encoder.hidden", x, features, hidden))
        loc = dense("encoder.loc", h, hidden, latent)
        scale = jnp.exp(0.5 * dense("encoder.logvar", h, hidden, latent))
        with numpyro.plate("batch", x.shape[0]):
            numpyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return model, guide


def make_schedule(name: str, steps: int):
    if name == "cyclical":  # Fu et al.: 4 cycles, ramping over the first half of each
        return cyclical_schedule(period=steps / 4, ratio=0.5)
    return monotonic_schedule(total_steps=max(steps // 2, 1))  # warm up over half the run


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--schedule", choices=("cyclical", "monotonic"), default="cyclical")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = binary_digits()
    model, guide = make_vae(data.shape[1])
    schedule = make_schedule(args.schedule, args.steps)
    svi = SVI(
        annealed(model, ["z"]), annealed(guide, ["z"]), numpyro.optim.Adam(args.lr), Trace_ELBO()
    )
    rng = np.random.default_rng(args.seed)
    # jitted, like the step: eager NumPyro would compile each of its many small ops
    state = jax.jit(svi.init)(jax.random.PRNGKey(args.seed), data[: args.batch], beta=0.0)
    traces = []

    @jax.jit
    def train_step(state, x, step):
        traces.append(step)  # runs only while tracing
        beta = schedule(step)  # the traced step -> beta, inside the compiled step
        state, loss = svi.update(state, x, beta=beta)
        return state, loss, beta

    log = []
    for step in range(args.steps):
        x = data[rng.choice(len(data), args.batch, replace=False)]
        state, loss, beta = train_step(state, x, step)
        log.append({"step": step, "beta": float(beta), "loss": float(loss) / args.batch})
        if step % max(args.steps // 10, 1) == 0 or step == args.steps - 1:
            row = log[-1]
            print(f"step {step:4d}  beta {row['beta']:.3f}  loss/digit {row['loss']:8.3f}")

    # The same state (so the same samples) at beta 1 and 0: -ELBO and its reconstruction.
    evaluate = jax.jit(svi.evaluate)
    neg_elbo = float(evaluate(state, data, beta=1.0)) / len(data)
    recon = float(evaluate(state, data, beta=0.0)) / len(data)
    final = {"neg_elbo": neg_elbo, "recon": recon, "kl": neg_elbo - recon}
    print(
        f"all {len(data)} digits at beta = 1: -ELBO {neg_elbo:.3f} nats = recon {recon:.3f} "
        f"+ KL {final['kl']:.3f}  (jitted step traced {len(traces)} time(s))"
    )
    assert all(math.isfinite(row["loss"]) for row in log)
    return {"log": log, "final": final, "traces": len(traces)}


if __name__ == "__main__":
    main()

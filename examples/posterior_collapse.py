"""Posterior collapse in an LSTM-VAE with an autoregressive decoder, and its cure by annealing.

Every arm trains the same Flax LSTM-VAE (same data, seeds, optimiser and learning rate);
only the KL weight differs, and it is computed inside the jitted train step from a
kl_schedules schedule of the integer step. Metrics are measured on held-out data, in nats
per sequence.

    python examples/posterior_collapse.py                 # all arms, seeds 0,1, topic data
    python examples/posterior_collapse.py --quick         # < 90 s on 2 cores (the tests)
    python examples/posterior_collapse.py --datasets topics,toy --seeds 0,1,2 --out results
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from kl_schedules import constant_schedule, cyclical_schedule, monotonic_schedule
from kl_schedules.control import free_bits, gaussian_kl, kl_per_dimension, pi_controller

# ---- data ------------------------------------------------------------------------------


def topic_markov_data(seed: int, topics=8, vocab=50, length=12, train=2000, test=500):
    """K "topics", each a first-order Markov chain over ``vocab`` tokens (Dirichlet(0.1)
    start and transition rows); a sequence picks a topic uniformly and walks its chain.
    Returns ``(train_tokens, train_labels, test_tokens, test_labels, vocab)``."""
    rng = np.random.default_rng(seed)
    start = rng.dirichlet(np.full(vocab, 0.1), size=topics)
    transition = rng.dirichlet(np.full(vocab, 0.1), size=(topics, vocab))
    labels = rng.integers(topics, size=train + test)

    def draw(probs):  # one categorical draw per row, by inverse CDF
        u = rng.random((probs.shape[0], 1))
        return np.minimum((np.cumsum(probs, axis=1) < u).sum(axis=1), vocab - 1)

    tokens = np.empty((train + test, length), dtype=np.int32)
    tokens[:, 0] = draw(start[labels])
    for j in range(1, length):
        tokens[:, j] = draw(transition[labels, tokens[:, j - 1]])
    return tokens[:train], labels[:train], tokens[train:], labels[train:], vocab


def random_sequences_data(seed: int, count=10, vocab=100, length=10):
    """Fu et al.'s toy: ``count`` random sequences, learnt and evaluated as they are."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(vocab, size=(count, length)).astype(np.int32)
    labels = np.arange(count)
    return tokens, labels, tokens, labels, vocab


DATASETS: dict[str, Callable[[int], tuple]] = {
    "topics": topic_markov_data,
    "toy": random_sequences_data,
}

# ---- model -----------------------------------------------------------------------------


class LSTMVAE(nn.Module):
    """LSTM encoder -> Gaussian z -> autoregressive LSTM decoder.

    z sets the decoder's initial state and is concatenated to every decoder input (the
    decoder can use z at each step, yet still collapses under constant beta)."""

    vocab: int
    embed: int = 32
    hidden: int = 64
    latent: int = 8

    def setup(self):
        self.embedding = nn.Embed(self.vocab + 1, self.embed)  # + BOS
        self.encoder = nn.RNN(nn.OptimizedLSTMCell(self.hidden), return_carry=True)
        self.to_stats = nn.Dense(2 * self.latent)
        self.to_carry = nn.Dense(2 * self.hidden)
        self.decoder = nn.RNN(nn.OptimizedLSTMCell(self.hidden))
        self.to_logits = nn.Dense(self.vocab)

    def encode(self, tokens):
        (_, h), _ = self.encoder(self.embedding(tokens))
        mu, logvar = jnp.split(self.to_stats(h), 2, axis=-1)
        return mu, logvar

    def decode(self, z, tokens):
        """Log-likelihood of ``tokens`` given ``z``, teacher-forced, summed over positions."""
        bos = jnp.full((*tokens.shape[:-1], 1), self.vocab, dtype=tokens.dtype)
        inputs = self.embedding(jnp.concatenate([bos, tokens[..., :-1]], axis=-1))
        zs = jnp.broadcast_to(z[..., None, :], (*inputs.shape[:-1], z.shape[-1]))
        inputs = jnp.concatenate([inputs, zs], axis=-1)
        c0, h0 = jnp.split(jnp.tanh(self.to_carry(z)), 2, axis=-1)
        logits = self.to_logits(self.decoder(inputs, initial_carry=(c0, h0)))
        log_probs = jax.nn.log_softmax(logits)
        return jnp.take_along_axis(log_probs, tokens[..., None], axis=-1).sum(axis=(-2, -1))

    def __call__(self, tokens, key):
        mu, logvar = self.encode(tokens)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        return self.decode(z, tokens), mu, logvar


# ---- arms ------------------------------------------------------------------------------


def make_schedule(name: str, steps: int):
    """The KL-weight schedule of an arm, built from the library.

    The ``pi`` arm's beta comes from its controller state instead (this schedule is unused),
    and the ``free-bits`` arm keeps beta = 1 on a free-bits KL term.
    """
    if name in ("constant", "pi", "free-bits"):
        return constant_schedule(1.0)
    if name == "monotonic":  # linear ramp over the first 25% of training
        return monotonic_schedule(total_steps=max(1, steps // 4), shape="linear")
    if name == "cyclical":  # Fu et al.: M = 4 cycles, R = 0.5, linear ramp
        return cyclical_schedule(period=steps / 4, ratio=0.5, shape="linear")
    if name == "cyclical-cosine":
        return cyclical_schedule(period=steps / 4, ratio=0.5, shape="cosine")
    raise ValueError(f"unknown schedule {name!r}; choose from {SCHEDULES}")


SCHEDULES = ("constant", "monotonic", "cyclical", "cyclical-cosine", "pi", "free-bits")

# ---- training --------------------------------------------------------------------------


def make_trainer(model: LSTMVAE, names: list[str], steps: int, tx, config: dict):
    """A jitted function running ``chunk`` train steps of every arm at once.

    Parameters and optimiser states are stacked over arms and the step is ``vmap``-ped over
    them; every arm sees the same batches and the same noise. Arm ``a``'s beta is the
    library's schedule ``schedules[a]`` of the traced integer step, or, for the ``pi`` arm,
    the beta of its :func:`kl_schedules.control.pi_controller` state, updated from the batch
    KL after each step. The ``free-bits`` arm optimises ``recon + free_bits(KL_j, lambda)``.
    """
    batch, chunk = config["batch"], config["log_every"]
    schedules = tuple(make_schedule(name, steps) for name in names)
    controller = pi_controller(config["pi_target"], k_p=config["pi_kp"], k_i=config["pi_ki"])
    is_pi = jnp.array([name == "pi" for name in names])
    is_free_bits = jnp.array([name == "free-bits" for name in names])
    arms = jnp.arange(len(names))

    def arm_step(params, opt_state, pi_state, arm, step, tokens, k_z):
        beta = jnp.where(is_pi[arm], pi_state.beta, jax.lax.switch(arm, schedules, step))

        def loss_fn(params):
            log_lik, mu, logvar = model.apply({"params": params}, tokens, k_z)
            recon, kl = -log_lik.mean(), gaussian_kl(mu, logvar).mean()
            clamped = free_bits(kl_per_dimension(mu, logvar), config["free_bits"])
            kl_term = jnp.where(is_free_bits[arm], clamped, kl)  # the objective's KL term
            return recon + beta * kl_term, (recon, kl)  # report the unclamped KL

        (_, (recon, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        updated = controller.update(pi_state, kl)
        pi_state = jax.tree.map(lambda new, old: jnp.where(is_pi[arm], new, old), updated, pi_state)
        metrics = jnp.stack([beta, kl, recon])
        return optax.apply_updates(params, updates), opt_state, pi_state, metrics

    def train_step(carry, _):
        params, opt_state, pi_state, step, key, data = carry
        key, k_batch, k_z = jax.random.split(key, 3)
        tokens = data[jax.random.randint(k_batch, (batch,), 0, data.shape[0])]
        params, opt_state, pi_state, metrics = jax.vmap(
            arm_step, in_axes=(0, 0, 0, 0, None, None, None)
        )(params, opt_state, pi_state, arms, step, tokens, k_z)
        return (params, opt_state, pi_state, step + 1, key, data), metrics

    @jax.jit
    def run_chunk(params, opt_state, pi_state, step, key, data):
        carry, trace = jax.lax.scan(
            train_step, (params, opt_state, pi_state, step, key, data), None, length=chunk
        )
        return carry[:5], trace.mean(axis=0)  # [arms, (beta, kl, recon)]

    init_pi = jax.vmap(lambda _: controller.init())(arms)
    return run_chunk, init_pi


def evaluate(model: LSTMVAE, params, tokens, key, samples: int = 32) -> dict[str, float]:
    """Held-out metrics in nats per sequence."""
    recon, kl, active, mutual_info = _evaluate(model, samples, params, tokens, key)
    return {
        "recon": float(recon),
        "kl": float(kl),
        "elbo": float(-(recon + kl)),
        "active_units": int(active),
        "mutual_info": float(mutual_info),
    }


@functools.partial(jax.jit, static_argnums=(0, 1))
def _evaluate(model: LSTMVAE, samples: int, params, tokens, key):
    mu, logvar = model.apply({"params": params}, tokens, method=LSTMVAE.encode)
    kl = gaussian_kl(mu, logvar)
    std = jnp.exp(0.5 * logvar)

    def log_lik(k):
        z = mu + std * jax.random.normal(k, mu.shape)
        return model.apply({"params": params}, z, tokens, method=LSTMVAE.decode)

    keys = jax.random.split(key, samples + 1)
    recon = -jnp.mean(jax.lax.map(log_lik, keys[:samples]), axis=0)  # E_q[-log p(x|z)]
    # active units: Var_x(E_q[z|x]) > 0.01 (Burda et al.)
    active = jnp.sum(jnp.var(mu, axis=0) > 0.01)
    # I(x; z) = E_x E_q(z|x)[log q(z|x) - log q(z)], q(z) the aggregate posterior
    z = mu + std * jax.random.normal(keys[-1], mu.shape)
    log_density = -0.5 * (
        ((z[:, None, :] - mu[None]) / std[None]) ** 2 + logvar[None] + math.log(2 * math.pi)
    ).sum(-1)  # [i, j] = log q(z_i | x_j)
    log_q_z = jax.nn.logsumexp(log_density, axis=1) - math.log(tokens.shape[0])
    mutual_info = jnp.mean(jnp.diag(log_density) - log_q_z)
    return recon.mean(), kl.mean(), active, mutual_info


def train_arms(dataset: str, names: list[str], seed: int, config: dict, log) -> list[dict]:
    """Trains one model per arm (same init, data, noise) and evaluates each on held-out data."""
    train, _, test, _, vocab = DATASETS[dataset](seed)
    model = LSTMVAE(vocab=vocab)
    steps, chunk = config["steps"], config["log_every"]
    tx = optax.adam(config["learning_rate"])
    run_chunk, pi_state = make_trainer(model, names, steps, tx, config)
    key = jax.random.key(seed)
    key, init_key = jax.random.split(key)
    params = model.init(init_key, jnp.asarray(train[:2]), init_key)["params"]
    params = jax.tree.map(lambda p: jnp.stack([p] * len(names)), params)
    opt_state, step, data = jax.vmap(tx.init)(params), jnp.int32(0), jnp.asarray(train)
    curves = [{"step": [], "beta": [], "kl": [], "recon": []} for _ in names]
    started = time.perf_counter()
    for done in range(chunk, steps + 1, chunk):
        (params, opt_state, pi_state, step, key), means = run_chunk(
            params, opt_state, pi_state, step, key, data
        )
        for curve, (beta, kl, recon) in zip(curves, np.asarray(means).tolist(), strict=True):
            for name, value in (("step", done), ("beta", beta), ("kl", kl), ("recon", recon)):
                curve[name].append(value)
        status = "  ".join(f"{n} {c['kl'][-1]:.2f}" for n, c in zip(names, curves, strict=True))
        log(
            f"\r  {dataset} seed {seed}  step {done:5d}/{steps}  "
            f"[{time.perf_counter() - started:5.1f} s]  train KL: {status}"
        )
    log("\n")
    seconds = time.perf_counter() - started
    runs = []
    for arm, name in enumerate(names):
        arm_params = jax.tree.map(lambda p, arm=arm: p[arm], params)
        metrics = evaluate(model, arm_params, jnp.asarray(test), jax.random.key(10_000 + seed))
        runs.append(
            {
                "dataset": dataset,
                "schedule": name,
                "seed": seed,
                **metrics,
                "train_seconds_all_arms": seconds,
                "curve": curves[arm],
            }
        )
    return runs


# ---- reporting -------------------------------------------------------------------------

METRICS = ("recon", "kl", "elbo", "active_units", "mutual_info")


def summary_table(runs: list[dict]) -> str:
    """Mean +- std over seeds of each metric, per dataset and schedule."""
    lines = [
        f"{'dataset':8s} {'schedule':16s} {'seeds':>5s} " + " ".join(f"{m:>15s}" for m in METRICS)
    ]
    keys = dict.fromkeys((r["dataset"], r["schedule"]) for r in runs)
    for dataset, schedule in keys:
        group = [r for r in runs if (r["dataset"], r["schedule"]) == (dataset, schedule)]
        cells = []
        for m in METRICS:
            values = np.array([r[m] for r in group], dtype=float)
            cells.append(f"{values.mean():8.2f} ± {values.std():4.2f}")
        lines.append(f"{dataset:8s} {schedule:16s} {len(group):5d} " + " ".join(cells))
    return "\n".join(lines)


def plot_curves(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    fig, axes = plt.subplots(3, len(datasets), figsize=(5 * len(datasets), 8), squeeze=False)
    colours = dict(zip(SCHEDULES, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for col, dataset in enumerate(datasets):
        for run in (r for r in runs if r["dataset"] == dataset):
            label = run["schedule"] if run["seed"] == runs[0]["seed"] else None
            for row, name in enumerate(("beta", "kl", "recon")):
                axes[row, col].plot(
                    run["curve"]["step"],
                    run["curve"][name],
                    color=colours.get(run["schedule"]),
                    alpha=0.8,
                    label=label,
                )
        axes[0, col].set_title(f"{dataset}: train-batch averages")
        for row, name in enumerate(("beta", "KL (nats)", "reconstruction (nats)")):
            axes[row, col].set_ylabel(name)
        axes[1, col].set_yscale("symlog", linthresh=0.1)
        axes[2, col].set_xlabel("step")
        axes[0, col].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1500 steps, seed 0, topic data, constant/monotonic/cyclical: < 90 s on 2 cores",
    )
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    parser.add_argument(
        "--datasets",
        default="topics",
        help=f"comma-separated, from {list(DATASETS)} (default topics)",
    )
    parser.add_argument(
        "--schedules",
        default=None,
        help=f"comma-separated, from {list(SCHEDULES)} (default all)",
    )
    parser.add_argument("--steps", type=int, default=2000, help="train steps per run (2000)")
    parser.add_argument("--out", default="out/posterior_collapse", help="output directory")
    parser.add_argument(
        "--pi-target",
        type=float,
        default=2.0,
        help="pi arm: target KL in nats per sequence (default 2)",
    )
    parser.add_argument("--pi-kp", type=float, default=0.01, help="pi arm: k_p (default 0.01)")
    parser.add_argument(
        "--pi-ki",
        type=float,
        default=1e-3,
        help="pi arm: k_i (default 1e-3: the reference 1e-4 is tuned for ~1e5 steps and "
        "does not reach the target within this demo's 2000)",
    )
    parser.add_argument(
        "--free-bits",
        type=float,
        default=0.25,
        help="free-bits arm: nats per latent dimension (default 0.25)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds = 1500, "0"
        args.schedules = args.schedules or "constant,monotonic,cyclical"
    args.schedules = args.schedules or ",".join(SCHEDULES)
    try:
        args.seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    args.datasets, args.schedules = args.datasets.split(","), args.schedules.split(",")
    for name, allowed in (("datasets", DATASETS), ("schedules", SCHEDULES)):
        unknown = [v for v in getattr(args, name) if v not in allowed]
        if unknown:
            parser.error(f"--{name}: unknown {unknown}; choose from {list(allowed)}")
    if args.steps < 100:
        parser.error(f"--steps must be >= 100, got {args.steps}")
    try:  # the library validates the controller and free-bits arguments
        pi_controller(args.pi_target, k_p=args.pi_kp, k_i=args.pi_ki)
        free_bits(jnp.zeros(1), args.free_bits)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = {
        "steps": args.steps,
        "log_every": max(1, args.steps // 20),
        "batch": 64,
        "learning_rate": 3e-3,
        "embed": 32,
        "hidden": 64,
        "latent": 8,
        "eval_samples": 32,
        "seeds": args.seeds,
        "datasets": args.datasets,
        "schedules": args.schedules,
        "pi_target": args.pi_target,
        "pi_kp": args.pi_kp,
        "pi_ki": args.pi_ki,
        "free_bits": args.free_bits,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"Training {len(args.schedules)} arms x {len(args.seeds)} seeds x "
        f"{len(args.datasets)} datasets, {args.steps} steps each; writing to {out}/",
        flush=True,
    )

    def log(text):
        sys.stdout.write(text)
        sys.stdout.flush()

    runs = [
        run
        for dataset in args.datasets
        for seed in args.seeds
        for run in train_arms(dataset, args.schedules, seed, config, log)
    ]
    table = summary_table(runs)
    print("\nHeld-out metrics, nats per sequence (mean ± std over seeds):\n" + table)
    result = {"config": config, "runs": runs}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    plot_curves(runs, out / "curves.png")
    print(f"\nwrote {out / 'results.json'} and {out / 'curves.png'}")
    return result


if __name__ == "__main__":
    main()

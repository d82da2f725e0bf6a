r"""Evaluation of a trained VAE, in nats per sequence (or per image).

With q(z|x) = N(mu(x), diag sigma^2(x)) and p(z) = N(0, I):

- ``recon`` = E_x E_{q(z|x)}[-log p(x|z)], a Monte-Carlo average over S samples of z;
  ``kl`` = E_x KL(q(z|x) || p(z)), exact (:func:`kl_schedules.control.gaussian_kl`);
  ``elbo`` = -(recon + kl). ``train_recon`` and ``train_kl`` are the same estimators on a
  subset of the training data, so the two can be compared for memorisation.
- ``nll_iw``: the importance-weighted bound (Burda et al. 2016) with K samples,
  -log p(x) <= -log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x); tighter than
  -elbo, and exact as K -> infinity.
- ``active_units``: :func:`kl_schedules.control.active_units`, the number of dimensions j
  with Var_x(E_q[z_j|x]) > 0.01.
- ``mutual_info``: I_q(x; z) = E_x E_{q(z|x)}[log q(z|x) - log q(z)], with one z_i ~ q(z|x_i)
  per evaluation sequence and q(z) the aggregate posterior over the N evaluation sequences,
  q(z) = (1/N) sum_j q(z|x_j) (:func:`kl_schedules.diagnostics.mutual_information`). It is
  at most log N, and at most the entropy of whatever z encodes (log 8 nats for 8
  equiprobable topics, if z encoded the topic only).
- ``probe_accuracy``: a multinomial logistic regression (scikit-learn's, L2, C = 1) trained
  to predict the label from one *sampled* z ~ q(z|x) per training sequence, scored on one
  sampled z per held-out sequence; chance is 1 / classes. A probe on mu would read the label
  even from a collapsed posterior, whose mu is tiny but not zero; sampled z hides it.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from kl_schedules.control import active_units, gaussian_kl
from kl_schedules.diagnostics import mutual_information

from .model import SequenceVAE


def sampled_terms(model: SequenceVAE, samples: int, chunk: int, params, tokens, key):
    """``(log p(x|z_k), log p(z_k) - log q(z_k|x), mu, logvar)`` for ``samples`` draws
    z_k ~ q(z|x): the first two ``[samples, n]``, computed ``chunk`` samples at a time."""
    parts = [
        _draws(model, chunk, params, tokens, k) for k in jax.random.split(key, samples // chunk)
    ]
    mu, logvar = _encode(model, params, tokens)
    return *(jnp.concatenate(p) for p in zip(*parts, strict=True)), mu, logvar


@functools.partial(jax.jit, static_argnums=(0, 1))
def _draws(model: SequenceVAE, chunk: int, params, tokens, key):
    mu, logvar = model.apply({"params": params}, tokens, method=SequenceVAE.encode)
    eps = jax.random.normal(key, (chunk, *mu.shape))
    z = mu + jnp.exp(0.5 * logvar) * eps
    repeated = jnp.broadcast_to(tokens, (chunk, *tokens.shape)).reshape(-1, tokens.shape[-1])
    flat_z = z.reshape(-1, z.shape[-1])
    log_lik = model.apply({"params": params}, flat_z, repeated, method=SequenceVAE.log_likelihood)
    # log N(z; 0, I) - log N(z; mu, sigma^2): the 2 pi terms cancel
    log_ratio = -0.5 * (z**2 - eps**2 - logvar).sum(-1)
    return log_lik.reshape(chunk, -1), log_ratio


def probe_accuracy(z_train, y_train, z_test, y_test) -> float:
    """Held-out accuracy of a multinomial logistic regression fitted on (z_train, y_train)."""
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(C=1.0, max_iter=2000).fit(z_train, y_train)
    return float(probe.score(z_test, y_test))


def evaluate(model: SequenceVAE, params, data, key, config: dict) -> dict:
    """Held-out and training-set metrics of one trained arm (module docstring).

    ``config`` gives ``eval_size`` (sequences of each set used), ``recon_samples`` (S),
    ``iw_samples`` (K), ``sample_chunk`` and ``probe_train_size`` (training sequences the
    probe learns from, or all if fewer); both sets use the same estimators.
    """
    size, samples, chunk = config["eval_size"], config["recon_samples"], config["sample_chunk"]
    train = jnp.asarray(data.train[:size])
    test, test_labels = jnp.asarray(data.test[:size]), data.test_labels[:size]
    k_train, k_test, k_mi, k_probe_train, k_probe_test = jax.random.split(key, 5)

    log_lik, _, mu_train, logvar_train = sampled_terms(
        model, samples, chunk, params, train, k_train
    )
    train_recon, train_kl = -log_lik.mean(), gaussian_kl(mu_train, logvar_train).mean()

    iw = config["iw_samples"]
    log_lik, log_ratio, mu, logvar = sampled_terms(model, iw, chunk, params, test, k_test)
    recon = -log_lik[:samples].mean()  # the same S-sample estimator as train_recon
    kl = gaussian_kl(mu, logvar).mean()
    nll_iw = -(jax.nn.logsumexp(log_lik + log_ratio, axis=0) - math.log(iw)).mean()
    mi = _mutual_information(mu, logvar, key=k_mi)

    def sample_z(key, mu, logvar):
        return np.asarray(mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape))

    probe_train = jnp.asarray(data.train[: config["probe_train_size"]])
    mu_probe, logvar_probe = _encode(model, params, probe_train)
    accuracy = probe_accuracy(
        sample_z(k_probe_train, mu_probe, logvar_probe),
        data.train_labels[: config["probe_train_size"]],
        sample_z(k_probe_test, mu, logvar),
        test_labels,
    )
    return {
        "recon": float(recon),
        "kl": float(kl),
        "elbo": float(-(recon + kl)),
        "nll_iw": float(nll_iw),
        "train_recon": float(train_recon),
        "train_kl": float(train_kl),
        "active_units": int(active_units(mu, 0.01)),
        "mutual_info": float(mi),
        "probe_accuracy": accuracy,
    }


@functools.partial(jax.jit, static_argnums=(0,))
def _encode(model: SequenceVAE, params, tokens):
    return model.apply({"params": params}, tokens, method=SequenceVAE.encode)


_mutual_information = jax.jit(mutual_information)

"""The data sets: every one is generated in code or ships inside a wheel (no downloads).

Each generator is deterministic in its ``seed`` and returns a :class:`Dataset` of integer
token sequences with a class label per sequence (the label the linear probe must recover).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
    train: np.ndarray  # [n_train, length] int32 tokens
    train_labels: np.ndarray  # [n_train] int
    test: np.ndarray  # [n_test, length]
    test_labels: np.ndarray  # [n_test]
    vocab: int  # tokens are in [0, vocab)
    classes: int  # labels are in [0, classes): the probe's chance level is 1 / classes


def _topic_chains(rng, topics: int, vocab: int):
    """Start and transition probabilities of every topic: the first draws from ``rng``."""
    start = rng.dirichlet(np.full(vocab, 0.1), size=topics)
    transition = rng.dirichlet(np.full(vocab, 0.1), size=(topics, vocab))
    return start, transition


def topic_markov_data(
    seed: int, topics: int = 8, vocab: int = 50, length: int = 12, train: int = 100_000, test=2000
) -> Dataset:
    """K "topics", each a first-order Markov chain over ``vocab`` tokens (Dirichlet(0.1)
    start and transition rows); a sequence picks a topic uniformly and walks its chain.
    The label is the topic."""
    rng = np.random.default_rng(seed)
    start, transition = _topic_chains(rng, topics, vocab)
    labels = rng.integers(topics, size=train + test)

    def draw(probs):  # one categorical draw per row, by inverse CDF
        u = rng.random((probs.shape[0], 1))
        return np.minimum((np.cumsum(probs, axis=1) < u).sum(axis=1), vocab - 1)

    tokens = np.empty((train + test, length), dtype=np.int32)
    tokens[:, 0] = draw(start[labels])
    for j in range(1, length):
        tokens[:, j] = draw(transition[labels, tokens[:, j - 1]])
    return Dataset(tokens[:train], labels[:train], tokens[train:], labels[train:], vocab, topics)


def topic_markov_nll(seed: int, tokens, labels, topics: int = 8, vocab: int = 50, **_):
    """The generating process's own NLL of ``tokens`` (nats per sequence, averaged), and
    its NLL given the true topic: the floors that no model of the topic data can beat, with
    or without knowing the topic. Their difference is I(x; topic) <= log(topics).

    -log p(x) = -log (1/K) sum_k p(x | k),   p(x | k) = start_k(x_1) prod_t T_k(x_t | x_t-1)
    """
    start, transition = _topic_chains(np.random.default_rng(seed), topics, vocab)
    log_start, log_transition = np.log(start + 1e-300), np.log(transition + 1e-300)
    log_p = log_start[:, tokens[:, 0]]  # [topic, sequence]: log p(x | topic)
    for j in range(1, tokens.shape[1]):
        log_p = log_p + log_transition[:, tokens[:, j - 1], tokens[:, j]]
    peak = log_p.max(0)
    log_marginal = peak + np.log(np.exp(log_p - peak).mean(0))
    return float(-log_marginal.mean()), float(-log_p[labels, np.arange(len(labels))].mean())


def digits_data(seed: int, threshold: int = 8, test: int = 300) -> Dataset:
    """scikit-learn's 1797 handwritten digits (8x8, grey levels 0-16), binarised as
    ``pixel >= threshold`` into 64 binary tokens in raster order; the label is the digit.
    ``seed`` picks the random train/test split (``test`` images held out)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    tokens = (digits.data >= threshold).astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(tokens))
    tokens, labels = tokens[order], digits.target[order]
    return Dataset(tokens[test:], labels[test:], tokens[:test], labels[:test], 2, 10)


def random_sequences_data(seed: int, count: int = 10, vocab: int = 100, length: int = 10):
    """Fu et al.'s toy: ``count`` random sequences, learnt and evaluated as they are (the
    held-out set *is* the training set); the label is the sequence's index."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(vocab, size=(count, length)).astype(np.int32)
    labels = np.arange(count)
    return Dataset(tokens, labels, tokens, labels, vocab, count)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "topics": topic_markov_data,
    "digits": digits_data,
    "toy": random_sequences_data,
}

"""The VAE: an encoder to a Gaussian z, and an autoregressive LSTM decoder that sees z."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn


class SequenceVAE(nn.Module):
    """Encoder -> Gaussian q(z|x) -> autoregressive LSTM decoder p(x|z) over tokens.

    The encoder is an LSTM over the token embeddings (``encoder="lstm"``) or an MLP over
    their concatenation (``encoder="mlp"``, for fixed-length data such as 64 pixels). z sets
    the decoder's initial state and is concatenated to every decoder input: the decoder can
    use z at each step, and still learns to ignore it under constant beta.
    """

    vocab: int
    embed: int = 32
    hidden: int = 64
    latent: int = 8
    encoder: str = "lstm"

    def setup(self):
        self.embedding = nn.Embed(self.vocab + 1, self.embed)  # + BOS
        if self.encoder == "lstm":
            self.encoder_rnn = nn.RNN(nn.OptimizedLSTMCell(self.hidden), return_carry=True)
        else:
            self.encoder_mlp = nn.Dense(4 * self.hidden)
        self.to_stats = nn.Dense(2 * self.latent)
        self.to_carry = nn.Dense(2 * self.hidden)
        self.decoder = nn.RNN(nn.OptimizedLSTMCell(self.hidden))
        self.to_logits = nn.Dense(self.vocab)

    def encode(self, tokens):
        """The posterior's ``(mu, logvar)``, each ``[..., latent]``."""
        embedded = self.embedding(tokens)
        if self.encoder == "lstm":
            (_, h), _ = self.encoder_rnn(embedded)
        else:
            h = nn.relu(self.encoder_mlp(embedded.reshape(*tokens.shape[:-1], -1)))
        mu, logvar = jnp.split(self.to_stats(h), 2, axis=-1)
        return mu, logvar

    def logits(self, z, tokens):
        """Next-token logits at every position, teacher-forced on ``tokens`` (causal:
        position t sees tokens before t only)."""
        bos = jnp.full((*tokens.shape[:-1], 1), self.vocab, dtype=tokens.dtype)
        inputs = self.embedding(jnp.concatenate([bos, tokens[..., :-1]], axis=-1))
        zs = jnp.broadcast_to(z[..., None, :], (*inputs.shape[:-1], z.shape[-1]))
        inputs = jnp.concatenate([inputs, zs], axis=-1)
        c0, h0 = jnp.split(jnp.tanh(self.to_carry(z)), 2, axis=-1)
        return self.to_logits(self.decoder(inputs, initial_carry=(c0, h0)))

    def log_likelihood(self, z, tokens):
        """log p(tokens | z), summed over positions: shape ``tokens.shape[:-1]``."""
        log_probs = jax.nn.log_softmax(self.logits(z, tokens))
        return jnp.take_along_axis(log_probs, tokens[..., None], axis=-1).sum(axis=(-2, -1))

    def __call__(self, tokens, key):
        """``(log p(x|z), mu, logvar)`` for one reparameterised sample z ~ q(z|x)."""
        mu, logvar = self.encode(tokens)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        return self.log_likelihood(z, tokens), mu, logvar


def generate(model: SequenceVAE, params, z, length: int, key, greedy: bool):
    """Decodes ``length`` tokens from ``z`` ([n, latent]) one position at a time: the most
    likely token (``greedy``) or a sample from p(x_t | x_<t, z). Reruns the decoder on the
    prefix at each position (quadratic in ``length``, cheap for the few images plotted)."""

    def position(t, carry):
        tokens, key = carry
        key, sub = jax.random.split(key)
        logits = model.apply({"params": params}, z, tokens, method=SequenceVAE.logits)[:, t]
        token = jnp.argmax(logits, -1) if greedy else jax.random.categorical(sub, logits)
        return tokens.at[:, t].set(token.astype(tokens.dtype)), key

    tokens = jnp.zeros((z.shape[0], length), jnp.int32)
    return jax.lax.fori_loop(0, length, position, (tokens, key))[0]

"""Training: every arm of one (data set, seed) at once, in one jitted ``lax.scan``.

Parameters and optimiser states are stacked over arms and the train step is ``vmap``-ped
over them: every arm has the same initialisation, batches, noise and optimiser; only the KL
weighting differs. Arm ``a``'s beta is the library's schedule of the traced integer step, or,
for the ``pi`` arm, the beta of a :func:`kl_schedules.control.pi_controller` state carried in
the scan and updated from the batch KL after each step. The ``free-bits`` arm keeps beta = 1
on the library's :func:`~kl_schedules.control.free_bits` KL term.

Every arm is watched by a :class:`kl_schedules.diagnostics.CollapseMonitor` (default
settings), fed the posterior of the held-out monitoring sequences at each logged point; each
run records the step at which it first flagged collapse (``collapse_step``, or None).
"""

from __future__ import annotations

import functools
import json
import math
import time
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from kl_schedules import constant_schedule, cyclical_schedule, monotonic_schedule
from kl_schedules.control import free_bits, gaussian_kl, kl_per_dimension, pi_controller
from kl_schedules.diagnostics import CollapseMonitor, PosteriorCollapseWarning

from .data import Dataset
from .metrics import evaluate
from .model import SequenceVAE

SCHEDULES = ("constant", "monotonic", "cyclical", "cyclical-cosine", "pi", "free-bits")


def make_schedule(name: str, steps: int, arm: dict):
    """The KL-weight schedule of an arm, built from the library and the arm's settings.

    ``pi`` and ``free-bits`` train at beta = 1 (the PI arm's beta comes from its controller
    state instead; its schedule is unused).
    """
    if name in ("constant", "pi", "free-bits"):
        return constant_schedule(arm.get("beta", 1.0))
    if name == "monotonic":  # ramp from 0 to 1 over the first ramp_fraction of training
        ramp = max(1, round(steps * arm["ramp_fraction"]))
        return monotonic_schedule(total_steps=ramp, shape=arm["shape"])
    if name in ("cyclical", "cyclical-cosine"):  # Fu et al.: M cycles, ramp over a fraction R
        return cyclical_schedule(
            period=steps / arm["cycles"], ratio=arm["ratio"], shape=arm["shape"]
        )
    raise ValueError(f"unknown schedule {name!r}; choose from {SCHEDULES}")


@functools.cache  # one compilation for all seeds of a data set
def make_trainer(
    model: SequenceVAE, names: tuple[str, ...], arms_json: str, steps: int, config_json: str
):
    """``(run_chunk, tx, pi_state, length)``: ``run_chunk(params, opt_state, pi_state, step,
    key, data, monitor)`` runs ``length`` train steps of every arm (steps at or past
    ``steps`` are skipped, so a run trains exactly ``steps``) and returns the new carry, the
    mean ``(beta, kl, recon)`` of each arm over the steps it ran, each arm's ELBO on the
    held-out ``monitor`` sequences (one fixed sample of z) and their posterior parameters
    ``(mu, logvar)``, shape ``[arms, sequences, latent]``. ``arms_json`` and ``config_json``
    are the arms' and the data set's settings, as JSON (hashable)."""
    arms, config = json.loads(arms_json), json.loads(config_json)
    tx = optax.adam(config["learning_rate"])
    batch = config["batch"]
    schedules = tuple(make_schedule(name, steps, arms[name]) for name in names)
    pi = arms.get("pi", {"target": 0.0, "k_p": 0.0, "k_i": 0.0})
    controller = pi_controller(pi["target"], k_p=pi["k_p"], k_i=pi["k_i"])
    nats_per_dim = arms.get("free-bits", {"nats_per_dim": 0.0})["nats_per_dim"]
    is_pi = jnp.array([name == "pi" for name in names])
    is_free_bits = jnp.array([name == "free-bits" for name in names])
    arm_ids = jnp.arange(len(names))

    def arm_step(params, opt_state, pi_state, arm, step, tokens, k_z):
        beta = jnp.where(is_pi[arm], pi_state.beta, jax.lax.switch(arm, schedules, step))

        def loss_fn(params):
            log_lik, mu, logvar = model.apply({"params": params}, tokens, k_z)
            recon, kl = -log_lik.mean(), gaussian_kl(mu, logvar).mean()
            clamped = free_bits(kl_per_dimension(mu, logvar), nats_per_dim)
            kl_term = jnp.where(is_free_bits[arm], clamped, kl)  # the objective's KL term
            return recon + beta * kl_term, (recon, kl)  # report the unclamped KL

        (_, (recon, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        updated = controller.update(pi_state, kl)
        pi_state = jax.tree.map(lambda new, old: jnp.where(is_pi[arm], new, old), updated, pi_state)
        return (
            optax.apply_updates(params, updates),
            opt_state,
            pi_state,
            jnp.stack([beta, kl, recon]),
        )

    def train_step(carry, data):
        params, opt_state, pi_state, step, key = carry
        key, k_batch, k_z = jax.random.split(key, 3)
        tokens = data[jax.random.randint(k_batch, (batch,), 0, data.shape[0])]
        params, opt_state, pi_state, metrics = jax.vmap(
            arm_step, in_axes=(0, 0, 0, 0, None, None, None)
        )(params, opt_state, pi_state, arm_ids, step, tokens, k_z)
        return (params, opt_state, pi_state, step + 1, key), metrics

    chunk_length = math.ceil(steps / LOG_POINTS)

    def monitor_elbo(params, tokens):
        log_lik, mu, logvar = model.apply({"params": params}, tokens, jax.random.key(0))
        return (log_lik - gaussian_kl(mu, logvar)).mean(), mu, logvar

    @jax.jit
    def run_chunk(params, opt_state, pi_state, step, key, data, monitor):
        def maybe_step(carry, _):
            run = carry[3] < steps
            skip = lambda carry: (carry, jnp.zeros((len(names), 3)))  # noqa: E731
            carry, metrics = jax.lax.cond(run, lambda c: train_step(c, data), skip, carry)
            return carry, (metrics, run)

        carry, (trace, ran) = jax.lax.scan(
            maybe_step, (params, opt_state, pi_state, step, key), None, length=chunk_length
        )
        weights = ran / jnp.maximum(ran.sum(), 1)
        heldout_elbo, mu, logvar = jax.vmap(monitor_elbo, in_axes=(0, None))(carry[0], monitor)
        return carry, jnp.einsum("s,sam->am", weights, trace), heldout_elbo, mu, logvar

    init_pi = jax.vmap(lambda _: controller.init())(arm_ids)
    return run_chunk, tx, init_pi, chunk_length


LOG_POINTS = 80  # points on each training curve
# The monitor's metrics (held-out monitoring sequences) and their names in each curve.
MONITOR_FIELDS = {
    "kl": "heldout_kl",
    "active_units": "heldout_active_units",
    "mutual_information": "heldout_mutual_info",
}


def train_arms(
    dataset: str,
    data: Dataset,
    names: list[str],
    seed: int,
    config: dict,
    arms: dict,
    log: Callable[[str, float | None], None],
):
    """Trains one model per arm (same init, data, noise) and evaluates each.

    ``config`` is the data set's settings (``model``, ``steps``, ``batch``,
    ``learning_rate``, ``eval``); ``arms`` the settings of each arm.
    Returns ``(runs, model, params)``: one JSON-ready dict per arm, and the trained
    parameters stacked over arms. ``log(line, fraction_done)`` reports progress, and
    ``log(line, None)`` a message (the collapse monitor's warning).
    """
    model = SequenceVAE(vocab=data.vocab, **config["model"])
    steps = config["steps"]
    run_chunk, tx, pi_state, chunk = make_trainer(
        model, tuple(names), json.dumps(arms), steps, json.dumps(config)
    )
    key = jax.random.key(seed)
    key, init_key = jax.random.split(key)
    params = model.init(init_key, jnp.asarray(data.train[:2]), init_key)["params"]
    params = jax.tree.map(lambda p: jnp.stack([p] * len(names)), params)
    opt_state, step, tokens = jax.vmap(tx.init)(params), jnp.int32(0), jnp.asarray(data.train)
    monitor = jnp.asarray(data.test[: config["eval"]["monitor_size"]])
    fields = ("step", "beta", "kl", "recon", "heldout_elbo", *MONITOR_FIELDS.values())
    curves: list[dict[str, list]] = [{name: [] for name in fields} for _ in names]
    monitors = [CollapseMonitor() for _ in names]
    collapse_messages: list[str | None] = [None] * len(names)
    monitor_seconds = 0.0
    started = time.perf_counter()
    for done in range(chunk, steps + chunk, chunk):
        done = min(done, steps)
        (params, opt_state, pi_state, step, key), means, heldout, mu, logvar = run_chunk(
            params, opt_state, pi_state, step, key, tokens, monitor
        )
        rows = zip(np.asarray(means).tolist(), np.asarray(heldout).tolist(), strict=True)
        for curve, ((beta, kl, recon), elbo) in zip(curves, rows, strict=True):
            for name, value in zip(fields, (done, beta, kl, recon, elbo), strict=False):
                curve[name].append(round(value, 4))
        monitor_started = time.perf_counter()
        mu, logvar = np.asarray(mu), np.asarray(logvar)
        for arm, (curve, arm_monitor) in enumerate(zip(curves, monitors, strict=True)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PosteriorCollapseWarning)
                metrics = arm_monitor.update(mu[arm], logvar[arm], step=done)
            for name, field in MONITOR_FIELDS.items():
                curve[field].append(round(metrics[name], 4))
            for warning in caught:
                collapse_messages[arm] = str(warning.message)
                log(f"  {dataset} seed {seed}  {names[arm]}: {warning.message}", None)
        monitor_seconds += time.perf_counter() - monitor_started
        status = "  ".join(f"{n} {c['kl'][-1]:.2f}" for n, c in zip(names, curves, strict=True))
        elapsed = time.perf_counter() - started
        log(
            f"  {dataset} seed {seed}  step {done:5d}/{steps}  [{elapsed:5.1f} s]  "
            f"train-batch KL: {status}",
            done / steps,
        )
    train_seconds = time.perf_counter() - started

    runs = []
    for arm, name in enumerate(names):
        started = time.perf_counter()
        arm_params = jax.tree.map(lambda p, arm=arm: p[arm], params)
        metrics = evaluate(model, arm_params, data, jax.random.key(10_000 + seed), config["eval"])
        runs.append(
            {
                "dataset": dataset,
                "schedule": name,
                "seed": seed,
                "steps_trained": int(step),
                **metrics,
                **last_quarter_changes(curves[arm], steps),
                "collapse_step": monitors[arm].collapse_step,
                "collapse_warning": collapse_messages[arm],
                "train_seconds_all_arms": train_seconds,
                "monitor_seconds_all_arms": monitor_seconds,
                "eval_seconds": time.perf_counter() - started,
                "curve": curves[arm],
            }
        )
    return runs, model, params


def last_quarter_changes(curve: dict, steps: int) -> dict[str, float]:
    """How much the train-batch KL and the held-out (monitor) ELBO still moved over the last
    quarter of training: the last logged value minus the last one logged at or before 75%
    of the steps. Cyclical schedules with 4 cycles are at the same phase (the end of a
    cycle) at both points."""
    at = int(np.flatnonzero(np.asarray(curve["step"]) <= 0.75 * steps).max(initial=0))
    kl, elbo = curve["kl"], curve["heldout_elbo"]
    return {
        "kl_change_last_quarter": kl[-1] - kl[at],
        "elbo_change_last_quarter": elbo[-1] - elbo[at],
    }

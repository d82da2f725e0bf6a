"""kl_schedules.diagnostics: the MI estimate against facts, collapse_metrics, CollapseMonitor."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kl_schedules.control import active_units, gaussian_kl, kl_per_dimension
from kl_schedules.diagnostics import (
    CollapseConfig,
    CollapseMonitor,
    PosteriorCollapseWarning,
    collapse_metrics,
    mutual_information,
)

# ---------------------------------------------------------------- mutual_information


def clusters(k: int, per_cluster: int, latent: int = 4, spread: float = 100.0):
    """k groups of identical posteriors N(c, I), the centres ``spread`` apart."""
    centres = spread * np.eye(max(k, latent))[:k, :latent] if k <= latent else None
    if centres is None:
        centres = spread * np.arange(k)[:, None] * np.ones((1, latent))
    mu = np.repeat(centres, per_cluster, axis=0)
    return mu, np.zeros_like(mu)


def as_kind(kind: str, *arrays):
    if kind == "numpy":
        return arrays
    if kind == "torch":
        return tuple(torch.tensor(a) for a in arrays)
    return tuple(jnp.asarray(a, jnp.float32) for a in arrays)


KEYS = {"numpy": 3, "torch": 3}


def key_for(kind: str, seed: int = 3):
    return jax.random.key(seed) if kind == "jax" else seed


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_mi_is_log_k_for_k_separated_equiprobable_clusters(kind, k):
    # x carries exactly log k nats about z: which of k far-apart clusters it came from.
    mu, logvar = as_kind(kind, *clusters(k, per_cluster=16))
    mi = float(mutual_information(mu, logvar, key=key_for(kind)))
    assert mi == pytest.approx(math.log(k), abs=1e-5)


@pytest.mark.parametrize("kind", ["numpy", "torch", "jax"])
def test_mi_is_zero_when_every_posterior_is_the_prior(kind):
    mu, logvar = as_kind(kind, np.zeros((128, 8)), np.zeros((128, 8)))
    assert abs(float(mutual_information(mu, logvar, key=key_for(kind)))) < 1e-5


def test_mi_of_a_nearly_collapsed_posterior_is_near_zero_within_the_documented_spread():
    # posteriors a hair away from the prior (KL ~ 6e-4 nats): the documented spread at
    # N = 512, d = 8 is a standard deviation of about 0.01 nats over keys
    rng = np.random.default_rng(1)
    mu, logvar = rng.normal(0, 0.01, (512, 8)), rng.normal(0, 0.01, (512, 8))
    values = np.array([float(mutual_information(mu, logvar, key=k)) for k in range(30)])
    assert abs(values.mean()) < 0.01
    assert values.std() < 0.03


def test_mi_is_large_when_each_row_is_its_own_cluster():
    # N distinct, far-apart posteriors: the estimate reaches its ceiling log N
    mu = 1000.0 * np.arange(64.0)[:, None] * np.ones((1, 2))
    assert float(mutual_information(mu, np.zeros_like(mu), key=0)) == pytest.approx(math.log(64))


@given(
    hnp.arrays(
        np.float64, st.tuples(st.integers(1, 24), st.integers(1, 4)), elements=st.floats(-20, 20)
    ),
    st.floats(-6, 3),
    st.integers(0, 2**32 - 1),
)
def test_mi_never_exceeds_log_n(mu, logvar_value, seed):
    logvar = np.full_like(mu, logvar_value) + 0.1 * np.tanh(mu)
    mi = float(mutual_information(mu, logvar, key=seed))
    assert mi <= math.log(len(mu)) + 1e-9


def reference_mi(mu, logvar, noise):
    """The estimator written as a plain loop over rows, with the same noise."""
    n = len(mu)
    z = mu + np.exp(0.5 * logvar) * noise
    total = 0.0
    for i in range(n):
        logs = [
            sum(
                -0.5
                * (
                    (z[i, d] - mu[j, d]) ** 2 / math.exp(logvar[j, d])
                    + logvar[j, d]
                    + math.log(2 * math.pi)
                )
                for d in range(mu.shape[1])
            )
            for j in range(n)
        ]
        peak = max(logs)
        log_q = peak + math.log(sum(math.exp(v - peak) for v in logs)) - math.log(n)
        total += logs[i] - log_q
    return total / n


def test_mi_matches_a_loop_reference_with_the_same_noise():
    rng = np.random.default_rng(5)
    mu, logvar = rng.normal(0, 1.5, (20, 3)), rng.normal(-1, 0.5, (20, 3))
    noise = np.random.default_rng(9).standard_normal(mu.shape)
    got = float(mutual_information(mu, logvar, key=np.random.default_rng(9)))
    assert got == pytest.approx(reference_mi(mu, logvar, noise), rel=1e-10)
    assert float(mutual_information(mu, logvar, key=9)) == got  # int seed = default_rng(seed)


def test_mi_torch_generator_and_seed_give_the_same_draw_and_keep_the_tensor_kind():
    rng = np.random.default_rng(2)
    mu = torch.tensor(rng.normal(size=(16, 3)), requires_grad=True)
    logvar = torch.tensor(rng.normal(-1, 0.3, size=(16, 3)))
    by_seed = mutual_information(mu, logvar, key=4)
    by_generator = mutual_information(mu, logvar, key=torch.Generator().manual_seed(4))
    assert isinstance(by_seed, torch.Tensor) and by_seed.shape == () and by_seed.requires_grad
    by_seed, by_generator = by_seed.detach(), by_generator.detach()
    assert float(by_seed) == float(by_generator)
    noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(4), dtype=mu.dtype)
    expected = reference_mi(mu.detach().numpy(), logvar.numpy(), noise.numpy())
    assert float(by_seed) == pytest.approx(expected, rel=1e-10)


@pytest.mark.slow
def test_mi_jax_is_jittable_and_vmappable():
    rng = np.random.default_rng(3)
    mu = jnp.asarray(rng.normal(size=(32, 4)), jnp.float32)
    logvar = jnp.asarray(rng.normal(-1, 0.2, size=(32, 4)), jnp.float32)
    key = jax.random.key(1)
    eager = mutual_information(mu, logvar, key=key)
    assert isinstance(eager, jax.Array) and eager.shape == ()
    assert float(jax.jit(mutual_information)(mu, logvar, key=key)) == pytest.approx(float(eager))
    noise = np.asarray(jax.random.normal(key, mu.shape, jnp.float32), np.float64)
    assert float(eager) == pytest.approx(
        reference_mi(np.asarray(mu, np.float64), np.asarray(logvar, np.float64), noise), abs=1e-4
    )
    keys = jax.random.split(key, 5)
    over_keys = jax.vmap(lambda k: mutual_information(mu, logvar, key=k))(keys)
    assert over_keys.shape == (5,) and len(set(np.asarray(over_keys).tolist())) == 5
    stacked = jnp.stack([mu, jnp.zeros_like(mu)])
    over_batches = jax.vmap(lambda m, v: mutual_information(m, v, key=key))(
        stacked, jnp.stack([logvar, jnp.zeros_like(logvar)])
    )
    assert float(over_batches[0]) == pytest.approx(float(eager))
    assert abs(float(over_batches[1])) < 1e-5


def test_mi_numpy_result_is_a_numpy_float():
    value = mutual_information(np.zeros((4, 2)), np.zeros((4, 2)), key=0)
    assert isinstance(value, np.floating)


@pytest.mark.parametrize(
    ("mu_shape", "logvar_shape", "match"),
    [
        ((8,), (8,), "2-D"),
        ((2, 4, 3), (2, 4, 3), "2-D"),
        ((8, 3), (8, 4), "same shape"),
        ((0, 3), (0, 3), "at least one row"),
    ],
)
def test_mi_rejects_bad_shapes(mu_shape, logvar_shape, match):
    with pytest.raises(ValueError, match=match):
        mutual_information(np.zeros(mu_shape), np.zeros(logvar_shape), key=0)


@pytest.mark.parametrize(
    ("mu", "key", "match"),
    [
        (np.zeros((4, 2)), jax.random.key(0), "numpy.random.Generator"),
        (np.zeros((4, 2)), True, "numpy.random.Generator"),
        (np.zeros((4, 2)), 1.5, "numpy.random.Generator"),
        (torch.zeros(4, 2), np.random.default_rng(0), "torch.Generator"),
        (jnp.zeros((4, 2)), 0, "jax.random key"),
        (jnp.zeros((4, 2)), np.random.default_rng(0), "jax.random key"),
    ],
)
def test_mi_rejects_a_key_of_the_wrong_kind(mu, key, match):
    with pytest.raises(TypeError, match=match):
        mutual_information(mu, mu * 0, key=key)


def test_mi_rejects_mixed_array_kinds():
    with pytest.raises(TypeError, match="same kind"):
        mutual_information(np.zeros((4, 2)), torch.zeros(4, 2), key=0)


@pytest.mark.slow
def test_mi_accepts_a_raw_uint32_jax_key():
    mu = jnp.zeros((4, 2))
    assert abs(float(mutual_information(mu, mu, key=jax.random.PRNGKey(0)))) < 1e-6


# ---------------------------------------------------------------- collapse_metrics


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["numpy", "torch", "jax"])
def test_collapse_metrics_matches_the_separate_helpers(kind):
    rng = np.random.default_rng(0)
    mu_np = rng.normal(0, [1.0, 0.05, 0.5], size=(64, 3))
    logvar_np = rng.normal(-1, 0.1, size=(64, 3))
    mu, logvar = as_kind(kind, mu_np, logvar_np)
    metrics = collapse_metrics(mu, logvar, key=key_for(kind))
    assert set(metrics) == {"kl", "kl_per_dimension", "active_units", "mutual_information"}
    np.testing.assert_allclose(float(metrics["kl"]), gaussian_kl(mu_np, logvar_np).mean(), 1e-5)
    np.testing.assert_allclose(
        np.asarray(metrics["kl_per_dimension"]), kl_per_dimension(mu_np, logvar_np), 1e-5
    )
    assert int(metrics["active_units"]) == int(active_units(mu_np)) == 2
    assert float(metrics["mutual_information"]) == pytest.approx(
        float(mutual_information(mu, logvar, key=key_for(kind))), abs=1e-6
    )
    kinds = {"numpy": (np.ndarray, np.generic), "torch": torch.Tensor, "jax": jax.Array}
    assert all(isinstance(v, kinds[kind]) for v in metrics.values())
    assert int(collapse_metrics(mu, logvar, key=key_for(kind), threshold=0.5)["active_units"]) == 1


def test_collapse_metrics_runs_inside_a_jitted_step():
    @jax.jit
    def step(mu, logvar, key):
        return collapse_metrics(mu, logvar, key=key)

    mu = jnp.asarray(clusters(4, 16)[0], jnp.float32)
    metrics = step(mu, jnp.zeros_like(mu), jax.random.key(0))
    assert float(metrics["mutual_information"]) == pytest.approx(math.log(4), abs=1e-5)
    assert int(metrics["active_units"]) == 4


def test_collapse_metrics_rejects_a_1d_batch():
    with pytest.raises(ValueError, match="2-D"):
        collapse_metrics(np.zeros(4), np.zeros(4), key=0)


def test_active_units_is_still_importable_from_control():
    from kl_schedules.control import active_units as from_control

    assert from_control is active_units


# ---------------------------------------------------------------- CollapseMonitor


def used_batch(rng, rows=64, latent=4):
    """A posterior in use: means spread over the data (all units active), KL ~ nats."""
    return rng.normal(0, 1, (rows, latent)), np.full((rows, latent), -2.0)


def unused_batch(rng, rows=64, latent=4):
    """A collapsed posterior: means ~0, variance ~1 (KL ~ 1e-3 nats, no active units)."""
    return rng.normal(0, 0.01, (rows, latent)), rng.normal(0, 0.01, (rows, latent))


def feed(monitor, batches, start=0):
    """Updates with each batch at steps start, start+1, ...; returns the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = [monitor.update(m, v, step=start + i) for i, (m, v) in enumerate(batches)]
    return outputs, [w for w in caught if issubclass(w.category, PosteriorCollapseWarning)]


def test_warning_is_a_user_warning():
    assert issubclass(PosteriorCollapseWarning, UserWarning)


@pytest.mark.parametrize("kind", ["numpy", "torch", "torch-grad", "jax"])
def test_update_takes_every_kind_and_returns_a_plain_dict_of_floats(kind):
    rng = np.random.default_rng(0)
    mu, logvar = used_batch(rng)
    if kind.startswith("torch"):
        mu, logvar = torch.tensor(mu, requires_grad=kind == "torch-grad"), torch.tensor(logvar)
        if kind == "torch-grad":
            mu = mu * 1.0  # a non-leaf tensor in a graph, as an encoder returns it
    elif kind == "jax":
        mu, logvar = jnp.asarray(mu), jnp.asarray(logvar)
    metrics = CollapseMonitor().update(mu, logvar)
    assert type(metrics) is dict
    assert list(metrics) == ["kl", "active_units", "mutual_information"]
    assert all(type(v) is float for v in metrics.values())
    assert metrics["active_units"] == 4.0


def test_metrics_are_those_of_the_window_of_recent_batches():
    rng = np.random.default_rng(1)
    monitor = CollapseMonitor(window=200)
    batches = [used_batch(rng, rows=64) for _ in range(6)]
    outputs, _ = feed(monitor, batches)
    # 200 rows hold the newest 3 batches of 64 (4 would be 256)
    mu = np.concatenate([b[0] for b in batches[-3:]])
    logvar = np.concatenate([b[1] for b in batches[-3:]])
    assert monitor.rows == 192
    assert outputs[-1]["kl"] == pytest.approx(float(gaussian_kl(mu, logvar).mean()))
    assert outputs[-1]["active_units"] == float(active_units(mu))


def test_active_units_need_the_window_not_one_row():
    # one row per batch: a single batch has no variance; the window pools them
    monitor = CollapseMonitor()
    first = monitor.update(np.array([[1.0, 0.0]]), np.zeros((1, 2)))
    second = monitor.update(np.array([[-1.0, 0.0]]), np.zeros((1, 2)))
    assert first["active_units"] == 0.0 and second["active_units"] == 1.0


def test_a_batch_larger_than_the_window_is_kept_whole():
    monitor = CollapseMonitor(window=10)
    rng = np.random.default_rng(0)
    feed(monitor, [used_batch(rng, rows=4), used_batch(rng, rows=30)])
    assert monitor.rows == 30


def test_silent_while_the_latent_is_in_use():
    rng = np.random.default_rng(2)
    monitor = CollapseMonitor(patience=2)
    outputs, caught = feed(monitor, [used_batch(rng) for _ in range(50)])
    assert caught == [] and not monitor.collapsed and monitor.collapse_step is None
    assert min(o["kl"] for o in outputs) > 1.0


def test_flags_after_exactly_patience_unused_updates_and_names_when_use_stopped():
    rng = np.random.default_rng(3)
    monitor = CollapseMonitor(patience=4, window=64)
    batches = [used_batch(rng) for _ in range(5)] + [unused_batch(rng) for _ in range(10)]
    _, caught = feed(monitor, batches, start=100)
    # used at steps 100..104, unused from 105: the 4th unused update is step 108
    assert monitor.collapse_step == 108 and monitor.collapsed
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("posterior collapse at step 108:")
    assert "in use until step 104" in message and "unused since step 105" in message


def test_warning_points_at_the_callers_line():
    rng = np.random.default_rng(3)
    monitor = CollapseMonitor(patience=1, window=64)
    with pytest.warns(PosteriorCollapseWarning) as caught:
        monitor.update(*unused_batch(rng))
    assert caught[0].filename == __file__


def test_never_in_use_says_so():
    rng = np.random.default_rng(4)
    monitor = CollapseMonitor(patience=3)
    _, caught = feed(monitor, [unused_batch(rng) for _ in range(5)], start=7)
    assert monitor.collapse_step == 9
    assert "not in use at any update judged since step 7" in str(caught[0].message)


def test_never_warns_twice_and_collapsed_follows_the_latent():
    rng = np.random.default_rng(5)
    monitor = CollapseMonitor(patience=2, window=64)
    sequence = (
        [unused_batch(rng) for _ in range(3)]
        + [used_batch(rng) for _ in range(3)]
        + [unused_batch(rng) for _ in range(5)]
    )
    _, caught = feed(monitor, sequence)
    assert len(caught) == 1
    assert monitor.collapse_step == 1  # the first flag stays
    assert monitor.collapsed  # unused again for >= patience updates
    _, caught = feed(monitor, [used_batch(rng)], start=20)
    assert not monitor.collapsed and monitor.collapse_step == 1 and caught == []


@pytest.mark.parametrize(
    ("mu_scale", "logvar", "unused"),
    [
        (0.0, 0.0, True),  # the prior itself
        (0.3, 0.0, False),  # KL ~0.18 nats, 4 active units
        (0.0, -0.5, False),  # KL 0.5 nats per row from the variances, no active unit
    ],
)
def test_unused_means_both_kl_and_active_units_below_the_thresholds(mu_scale, logvar, unused):
    monitor = CollapseMonitor(patience=1)
    mu = mu_scale * np.random.default_rng(0).standard_normal((256, 4))
    _, caught = feed(monitor, [(mu, np.full((256, 4), logvar))])
    assert monitor.collapsed is unused and len(caught) == int(unused)


def test_active_units_above_the_allowance_keep_the_latent_in_use():
    # KL tiny but one unit varies: in use by default; unused when one unit is allowed
    mu = np.zeros((256, 4))
    mu[:, 0] = np.linspace(-0.2, 0.2, 256)  # variance 0.0135 > 0.01; KL 0.007 nats
    for allowance, unused in ((0, False), (1, True)):
        monitor = CollapseMonitor(patience=1, max_active_units=allowance)
        feed(monitor, [(mu, np.zeros_like(mu))])
        assert monitor.collapsed is unused


def test_start_step_skips_judging_the_first_updates():
    rng = np.random.default_rng(6)
    monitor = CollapseMonitor(patience=2, start_step=5)
    _, caught = feed(monitor, [unused_batch(rng) for _ in range(7)])
    assert monitor.collapse_step == 6 and len(caught) == 1


def test_step_defaults_to_the_number_of_earlier_updates():
    rng = np.random.default_rng(7)
    monitor = CollapseMonitor(patience=3)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        for _ in range(5):
            monitor.update(*unused_batch(rng))
    assert monitor.collapse_step == 2


def window_state(monitor):
    return copy.deepcopy(monitor.state_dict())


@pytest.mark.parametrize(
    ("mu", "logvar", "match"),
    [
        (np.zeros(4), np.zeros(4), "2-D"),
        (np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), "2-D"),
        (np.zeros((8, 4)), np.zeros((8, 3)), "same shape"),
        (np.zeros((8, 4)), np.zeros((7, 4)), "same shape"),
        (np.zeros((8, 5)), np.zeros((8, 5)), "latent dimensions"),
        (np.zeros((0, 4)), np.zeros((0, 4)), "at least one row"),
    ],
)
def test_bad_batches_raise_and_leave_the_window_unchanged(mu, logvar, match):
    rng = np.random.default_rng(8)
    monitor = CollapseMonitor()
    feed(monitor, [used_batch(rng) for _ in range(3)])
    before = window_state(monitor)
    with pytest.raises(ValueError, match=match):
        monitor.update(mu, logvar)
    assert window_state(monitor) == before


def test_non_numeric_input_raises_a_type_error():
    with pytest.raises(TypeError, match="mu must be a real array"):
        CollapseMonitor().update("abc", np.zeros((2, 2)))


def test_bad_step_raises():
    with pytest.raises(ValueError, match="step"):
        CollapseMonitor().update(np.zeros((2, 2)), np.zeros((2, 2)), step=-1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_raises_by_default_and_leaves_the_window_unchanged(bad):
    rng = np.random.default_rng(9)
    monitor = CollapseMonitor()
    feed(monitor, [used_batch(rng)])
    before = window_state(monitor)
    mu, logvar = used_batch(rng)
    logvar[3, 1] = bad
    with pytest.raises(ValueError, match="at step 12 hold 1 NaN or infinite values"):
        monitor.update(mu, logvar, step=12)
    assert window_state(monitor) == before  # the window, the counters, the random state


def test_nan_skip_policy_leaves_the_batch_out_and_counts_it():
    rng = np.random.default_rng(10)
    monitor = CollapseMonitor(nan_policy="skip", patience=1)
    first = monitor.update(*used_batch(rng))
    mu, logvar = unused_batch(rng)
    mu[0, 0] = np.nan
    skipped = monitor.update(mu, logvar)
    assert skipped == first and monitor.skipped == 1 and monitor.rows == 64
    assert not monitor.collapsed
    fresh = CollapseMonitor(nan_policy="skip")
    assert all(math.isnan(v) for v in fresh.update(mu, logvar).values())


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("kl_threshold", 0.0, ValueError),
        ("kl_threshold", -1.0, ValueError),
        ("kl_threshold", math.nan, ValueError),
        ("kl_threshold", "0.1", TypeError),
        ("active_threshold", -0.1, ValueError),
        ("max_active_units", -1, ValueError),
        ("max_active_units", 1.5, ValueError),
        ("patience", 0, ValueError),
        ("patience", True, TypeError),
        ("window", 1, ValueError),
        ("start_step", -1, ValueError),
        ("nan_policy", "ignore", ValueError),
        ("nan_policy", None, TypeError),
        ("seed", -1, ValueError),
    ],
)
def test_config_validates_every_field(field, value, error):
    with pytest.raises(error, match=field):
        CollapseConfig(**{field: value})
    with pytest.raises(error, match=field):
        CollapseMonitor(**{field: value})


def test_config_is_frozen_and_normalises_numbers():
    config = CollapseConfig(kl_threshold=1, patience=np.int64(3))
    assert type(config.kl_threshold) is float and type(config.patience) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.patience = 5  # type: ignore[misc]


def test_monitor_takes_a_config_or_keywords_not_both():
    assert CollapseMonitor(CollapseConfig(patience=3)).config == CollapseMonitor(patience=3).config
    with pytest.raises(TypeError, match="not both"):
        CollapseMonitor(CollapseConfig(), patience=3)
    with pytest.raises(TypeError, match="CollapseConfig"):
        CollapseMonitor({"patience": 3})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword"):
        CollapseMonitor(patiences=3)


def continuation(monitor, rng_seed=11):
    rng = np.random.default_rng(rng_seed)
    batches = [used_batch(rng) for _ in range(2)] + [unused_batch(rng) for _ in range(6)]
    outputs, caught = feed(monitor, batches, start=50)
    return outputs, [str(w.message) for w in caught], monitor.collapse_step


def half_run(**settings):
    rng = np.random.default_rng(12)
    monitor = CollapseMonitor(patience=3, window=128, **settings)
    feed(monitor, [used_batch(rng) for _ in range(3)] + [unused_batch(rng) for _ in range(2)])
    return monitor


def test_state_dict_round_trip_continues_identically_and_is_json():
    monitor = half_run()
    state = json.loads(json.dumps(monitor.state_dict()))
    restored = CollapseMonitor(patience=3, window=128)
    restored.load_state_dict(state)
    expected = continuation(monitor)
    assert continuation(restored) == expected
    # unused batches from step 52; the window (2 batches) still holds step 51's used one,
    # so updates are unused from 53 on and the third of them, 55, flags
    assert expected[2] == 55 and len(expected[1]) == 1


def test_state_dict_keeps_the_warned_flag():
    rng = np.random.default_rng(13)
    monitor = CollapseMonitor(patience=1)
    feed(monitor, [unused_batch(rng)])
    restored = CollapseMonitor(patience=1)
    restored.load_state_dict(monitor.state_dict())
    _, caught = feed(restored, [used_batch(rng), unused_batch(rng)])
    assert caught == [] and restored.collapse_step == 0


def test_loading_state_saved_with_other_settings_raises_naming_them():
    state = half_run().state_dict()
    other = CollapseMonitor(patience=4, window=128, kl_threshold=0.1)
    before = window_state(other)
    with pytest.raises(ValueError, match=r"kl_threshold \(saved 0.05, here 0.1\), patience"):
        other.load_state_dict(state)
    assert window_state(other) == before
    other.load_state_dict(state, strict=False)
    assert other.config == CollapseConfig(patience=3, window=128)
    assert continuation(other) == continuation(half_run())


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda s: s.pop("state"), ValueError, "missing"),
        (lambda s: s["config"].update(extra=1), ValueError, "unknown"),
        (lambda s: s["config"].update(patience=0), ValueError, "patience"),
        (lambda s: s["state"].pop("rng"), ValueError, "missing"),
        (lambda s: s["state"].update(rng={"bit_generator": "nope"}), ValueError, "rng"),
        (lambda s: s["state"].update(calls=-1), ValueError, "calls"),
        (lambda s: s["state"]["mu"].pop(), ValueError, "different numbers"),
        (lambda s: s["state"]["mu"].__setitem__(0, [1.0, 2.0]), ValueError, "2-D"),
        (lambda s: s["state"].update(collapse_step=-3), ValueError, "collapse_step"),
    ],
)
def test_a_bad_state_dict_raises_and_changes_nothing(mutate, error, match):
    state = half_run().state_dict()
    mutate(state)
    monitor = half_run()
    before = window_state(monitor)
    with pytest.raises(error, match=match):
        monitor.load_state_dict(state)
    assert window_state(monitor) == before


def test_pickle_round_trip_continues_identically():
    monitor = half_run()
    restored = pickle.loads(pickle.dumps(monitor))
    assert restored.config == monitor.config
    assert continuation(restored) == continuation(monitor)


def test_repr_names_the_state():
    assert "collapsed=False" in repr(CollapseMonitor())


# ---------------------------------------------------------------- the benchmark


@pytest.mark.slow
def test_collapse_metrics_benchmark_runs_in_tiny_mode(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "run.py"),
            "--tiny",
            "--only",
            "collapse_metrics",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(out.read_text())["results"]["collapse_metrics"]
    assert row["ratio"] > 0 and row["target"] == "<= 1.05"
    assert row["us_per_step"] > 0 and row["baseline_us_per_step"] > 0

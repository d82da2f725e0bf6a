"""KLAnnealingCallback in compiled model.fit (JAX backend), the way users write it.

Every test reads the beta the compiled loss actually used, per optimizer step, through a
``jax.debug.callback`` inside the loss: never the variable from outside.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
jax = pytest.importorskip("jax")

from kl_schedules import Annealer, cyclical_schedule, monotonic_schedule  # noqa: E402
from kl_schedules.keras import KLAnnealingCallback  # noqa: E402

BATCH, SAMPLES = 8, 64  # 8 optimizer steps per epoch


SEEN: list[float] = []  # the betas the compiled losses used, one entry per train step


def record(beta_value):
    jax.debug.callback(lambda v: SEEN.append(float(v)), beta_value, ordered=True)


class BetaProbe(keras.Model):
    """A model that owns its beta; its loss is ``2 beta`` and logs the beta it used."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)
        self.beta = keras.Variable(0.0, trainable=False, name="beta")

    def call(self, x):
        return self.dense(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
        record(self.beta.value)
        return self.beta * 2.0 + 0.0 * keras.ops.sum(y_pred)


# A beta defined outside any model, as users (and the README) write it.
outside_beta = keras.Variable(0.0, trainable=False, name="outside_beta")


class OutsideBetaModel(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
        record(outside_beta.value)
        return outside_beta * 2.0 + 0.0 * keras.ops.sum(y_pred)


def functional_model_with_outside_beta():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))

    def loss(y_true, y_pred):
        record(outside_beta.value)
        return outside_beta * 2.0 + 0.0 * keras.ops.sum(y_pred)

    return model, loss


class BatchLogs(keras.callbacks.Callback):
    """A user callback: what ``logs`` holds at each batch end, and the variable's value
    read the documented way under JAX (``self.model`` first: it syncs Keras's state)."""

    def __init__(self, beta):
        super().__init__()
        self.beta, self.logged, self.read = beta, [], []

    def on_train_batch_end(self, batch, logs=None):
        self.logged.append(logs["beta"])
        self.model  # noqa: B018 - with JAX, attaches the trainer's state to the variables
        self.read.append(float(keras.ops.convert_to_numpy(self.beta.value)))


def data():
    return np.ones((SAMPLES, 2), "float32"), np.ones((SAMPLES, 1), "float32")


def fit(model, callback, epochs=2, initial_epoch=0, recompile=True, **compile_kwargs):
    if recompile:
        model.compile(**{"optimizer": "sgd", **compile_kwargs})
    x, y = data()
    return model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=epochs,
        initial_epoch=initial_epoch,
        verbose=0,
        callbacks=callback if isinstance(callback, list) else [callback],
        shuffle=False,
    )


def linear(t, total=12):
    return min(t / total, 1.0)


def iterations(model):
    return int(model.optimizer.iterations.value)


@pytest.fixture(autouse=True)
def reset():
    outside_beta.assign(0.0)
    SEEN.clear()


@pytest.mark.slow
def test_per_step_betas_follow_the_optimizer():
    model = BetaProbe()
    history = fit(model, KLAnnealingCallback(model.beta, monotonic_schedule(12)), jit_compile=True)
    np.testing.assert_allclose(SEEN, [linear(t) for t in range(16)], atol=1e-7)
    assert history.history["beta"] == pytest.approx([linear(7), linear(15)])
    assert iterations(model) == 16


def test_steps_per_execution_advances_at_the_optimizers_pace():
    model = BetaProbe()
    callback = KLAnnealingCallback(model.beta, monotonic_schedule(12))
    fit(model, callback, epochs=3, steps_per_execution=4)
    # beta is computed inside each of the 4 steps of an execution, from the optimizer's
    # iteration count: no staircase
    np.testing.assert_allclose(SEEN, [linear(t) for t in range(24)], atol=1e-7)
    assert callback.step == 23  # the last optimizer step, whose beta is callback.last_beta
    assert callback.last_beta == 1.0


def test_resumed_fit_with_a_new_callback_continues_the_schedule():
    model = BetaProbe()
    schedule = cyclical_schedule(period=12, ratio=0.5)
    fit(model, KLAnnealingCallback(model.beta, schedule), epochs=2)
    fit(
        model, KLAnnealingCallback(model.beta, schedule), epochs=4, initial_epoch=2, recompile=False
    )
    expected = [min((t % 12) / 6, 1.0) for t in range(32)]
    np.testing.assert_allclose(SEEN, expected, atol=1e-7)


def test_resumed_fit_from_a_restored_model_and_optimizer(tmp_path):
    model = OutsideBetaModel()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    with pytest.warns(UserWarning, match="before monotonic_schedule"):  # 16 of 24 steps
        fit(model, KLAnnealingCallback(outside_beta, monotonic_schedule(24)), recompile=False)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path, custom_objects={"OutsideBetaModel": OutsideBetaModel})
    assert iterations(restored) == 16
    fit(
        restored,
        KLAnnealingCallback(outside_beta, monotonic_schedule(24)),
        epochs=4,
        initial_epoch=2,
        recompile=False,
    )
    np.testing.assert_allclose(SEEN, [linear(t, 24) for t in range(32)], atol=1e-7)


def test_warns_once_when_the_schedule_cannot_finish_within_the_fit():
    model = BetaProbe()
    callback = KLAnnealingCallback(model.beta, monotonic_schedule(100))
    with pytest.warns(UserWarning, match="ends after 24 optimizer steps") as caught:
        fit(model, callback, epochs=3)
    assert len(caught) == 1
    annealer = Annealer(total_steps=5)
    with pytest.warns(UserWarning, match="needs 5 more steps"):
        fit(BetaProbe(), KLAnnealingCallback(model.beta, annealer, update="epoch"), epochs=4)


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_beta_defined_outside_the_model_reaches_the_compiled_step(steps_per_execution):
    model = OutsideBetaModel()
    user = BatchLogs(outside_beta)
    fit(
        model,
        [KLAnnealingCallback(outside_beta, monotonic_schedule(12)), user],
        jit_compile=True,
        steps_per_execution=steps_per_execution,
    )
    np.testing.assert_allclose(SEEN, [linear(t) for t in range(16)], atol=1e-7)
    k = steps_per_execution  # logs at each execution's end; the last one is short (8 = 3+3+2)
    ends = [e + min(s + k - 1, 7) for e in (0, 8) for s in range(0, 8, k)]
    np.testing.assert_allclose(user.logged, [linear(t) for t in ends], atol=1e-7)
    np.testing.assert_allclose(user.read, [linear(t) for t in ends], atol=1e-7)
    # only for the duration of fit: the model's variables are unchanged afterwards
    assert all(v is not outside_beta for v in model.variables)


def test_beta_outside_a_functional_model_with_a_loss_function():
    model, loss = functional_model_with_outside_beta()
    fit(model, KLAnnealingCallback(outside_beta, monotonic_schedule(12)), loss=loss)
    np.testing.assert_allclose(SEEN, [linear(t) for t in range(16)], atol=1e-7)


@pytest.mark.parametrize("with_input", [True, False])
def test_beta_outside_a_sequential_model(with_input, tmp_path):
    """A Sequential keeps its own list of layers: beta rides on one of them during fit."""
    layers = [keras.Input((2,))] if with_input else []
    model = keras.Sequential([*layers, keras.layers.Dense(1)])

    def loss(y_true, y_pred):
        record(outside_beta.value)
        return outside_beta * 2.0 + 0.0 * keras.ops.sum(y_pred)

    checkpoint = keras.callbacks.ModelCheckpoint(tmp_path / "s.weights.h5", save_weights_only=True)
    model.compile(optimizer="sgd", loss=loss, steps_per_execution=2)
    x, y = data()
    callback = KLAnnealingCallback(outside_beta, monotonic_schedule(12))
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[callback, checkpoint])
    np.testing.assert_allclose(SEEN, [linear(t) for t in range(16)], atol=1e-7)
    assert all(v is not outside_beta for v in model.variables)  # detached after fit
    fresh = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    fresh.load_weights(tmp_path / "s.weights.h5")  # the mid-fit checkpoint loads
    np.testing.assert_allclose(fresh.layers[0].kernel.numpy(), model.layers[0].kernel.numpy())


def test_evaluate_after_fit_sees_a_later_beta_when_given_the_callback():
    model, loss = functional_model_with_outside_beta()
    callback = KLAnnealingCallback(outside_beta, monotonic_schedule(4))
    fit(model, callback, epochs=1, loss=loss)
    x, y = data()
    outside_beta.assign(0.25)
    assert model.evaluate(x, y, batch_size=BATCH, verbose=0) == 0.5  # traced now: 0.25 baked in
    outside_beta.assign(0.75)
    SEEN.clear()
    assert model.evaluate(x, y, batch_size=BATCH, verbose=0, callbacks=[callback]) == 1.5
    assert SEEN and set(SEEN) == {0.75}
    assert all(v is not outside_beta for v in model.variables)  # detached again


def test_a_fit_that_raises_does_not_leave_beta_attached_after_a_later_evaluate():
    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("boom")

    model, loss = functional_model_with_outside_beta()
    callback = KLAnnealingCallback(outside_beta, monotonic_schedule(4))
    model.compile(optimizer="sgd", loss=loss)
    x, y = data()
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[callback, Boom()])
    model.evaluate(x, y, batch_size=BATCH, verbose=0, callbacks=[callback])
    assert all(v is not outside_beta for v in model.variables)


def test_a_fit_that_raises_leaves_no_schedule_in_later_fits_without_the_callback():
    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise RuntimeError("boom")

    model = BetaProbe()
    model.compile(optimizer="sgd")
    callback = KLAnnealingCallback(model.beta, monotonic_schedule(4))
    with pytest.raises(RuntimeError, match="boom"):
        fit(model, [callback, Boom()], epochs=1, recompile=False)
    SEEN.clear()
    fit(model, [], epochs=1, recompile=False)  # no annealing: beta stays what it is
    assert len(SEEN) == 8 and len(set(SEEN)) == 1
    fit(model, [callback], epochs=2, initial_epoch=1, recompile=False)  # annealing again
    np.testing.assert_allclose(SEEN[8:], [min(t / 4, 1.0) for t in range(11, 19)], atol=1e-7)


def test_run_eagerly_raises_no_false_error():
    model = OutsideBetaModel()
    fit(model, KLAnnealingCallback(outside_beta, monotonic_schedule(12)), run_eagerly=True)
    np.testing.assert_allclose(SEEN, [linear(t) for t in range(16)], atol=1e-7)


def test_checkpoints_written_during_fit_load_into_a_fresh_model(tmp_path):
    model = OutsideBetaModel()
    checkpoint = keras.callbacks.ModelCheckpoint(
        tmp_path / "ckpt.weights.h5", save_weights_only=True
    )
    model.compile(optimizer="sgd")
    x, y = data()
    callback = KLAnnealingCallback(outside_beta, monotonic_schedule(4))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[callback, checkpoint])
    fresh = OutsideBetaModel()
    fresh(x[:1])
    fresh.load_weights(tmp_path / "ckpt.weights.h5")
    np.testing.assert_allclose(fresh.dense.kernel.numpy(), model.dense.kernel.numpy())


def test_per_epoch_updates_with_cyclical_schedule():
    model = BetaProbe()
    fit(model, KLAnnealingCallback(model.beta, cyclical_schedule(2, 0.5), "epoch"), epochs=4)
    np.testing.assert_allclose(SEEN, np.repeat([0.0, 1.0, 0.0, 1.0], 8), atol=1e-7)


def test_annealer_steps_with_the_optimizer_and_resumes_from_its_state_dict():
    model = BetaProbe()
    annealer = Annealer(total_steps=10, cyclical=True)
    fit(model, KLAnnealingCallback(model.beta, annealer), epochs=1, steps_per_execution=4)
    assert annealer.current_step == 8  # one annealer step per optimizer step
    resumed = Annealer(1)
    resumed.load_state_dict(annealer.state_dict())
    fit(model, KLAnnealingCallback(model.beta, resumed), epochs=2, initial_epoch=1, recompile=False)
    np.testing.assert_allclose(SEEN, [t % 10 / 10 for t in range(16)], atol=1e-7)
    assert resumed.current_step == 6


def test_annealer_per_epoch():
    model = BetaProbe()
    annealer = Annealer(total_steps=2, cyclical=True)
    fit(model, KLAnnealingCallback(model.beta, annealer, "epoch"), epochs=4)
    np.testing.assert_allclose(SEEN, np.repeat([0.0, 0.5, 0.0, 0.5], 8), atol=1e-7)
    assert annealer.current_step == 0


def test_bad_arguments():
    beta = keras.Variable(0.0, trainable=False)
    with pytest.raises(ValueError, match="update"):
        KLAnnealingCallback(beta, monotonic_schedule(4), update="step")
    with pytest.raises(ValueError, match="non-trainable"):
        KLAnnealingCallback(keras.Variable(0.0), monotonic_schedule(4))
    with pytest.raises(ValueError, match="scalar"):
        KLAnnealingCallback(keras.Variable(np.zeros(2), trainable=False), monotonic_schedule(4))
    with pytest.raises(TypeError, match="beta"):
        KLAnnealingCallback(0.5, monotonic_schedule(4))
    with pytest.raises(TypeError, match="schedule"):
        KLAnnealingCallback(beta, 3)
    with pytest.raises(ValueError, match=r"scalar beta, got an output of shape \(2,\)"):
        KLAnnealingCallback(beta, lambda s: jax.numpy.zeros(2) + s)


def test_an_integer_beta_variable_is_refused_naming_its_dtype():
    # keras.Variable(0) is int32: the loss would see 0, 0, 0, 0, 1 for a ramp
    with pytest.raises(TypeError, match=r"floating keras\.Variable, got dtype int32"):
        KLAnnealingCallback(keras.Variable(0, trainable=False), monotonic_schedule(4))
    for dtype in ("float16", "bfloat16", "float32"):
        KLAnnealingCallback(keras.Variable(0.0, trainable=False, dtype=dtype), linear)


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_a_plain_python_schedule_runs_on_the_host_every_step(steps_per_execution):
    model = BetaProbe()
    schedule = lambda s: min(1.0, s / 12)  # noqa: E731 - a branch on the step: not traceable
    history = fit(
        model,
        KLAnnealingCallback(model.beta, schedule),
        jit_compile=True,
        steps_per_execution=steps_per_execution,
    )
    np.testing.assert_allclose(SEEN, [linear(t) for t in range(16)], atol=1e-7)
    assert history.history["beta"] == pytest.approx([linear(7), linear(15)])


@pytest.mark.parametrize("inside", [True, False])
def test_every_batch_logs_beta_for_user_callbacks_and_csv_logger(inside, tmp_path):
    model = BetaProbe() if inside else OutsideBetaModel()
    beta = model.beta if inside else outside_beta
    user = BatchLogs(beta)
    csv = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    model.compile(optimizer="sgd")
    x, y = data()
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        verbose=0,
        shuffle=False,
        callbacks=[KLAnnealingCallback(beta, monotonic_schedule(12)), user, csv],
    )
    expected = [linear(t) for t in range(16)]
    np.testing.assert_allclose(user.logged, expected, atol=1e-7)
    np.testing.assert_allclose(user.read, expected, atol=1e-7)  # the beta the step used
    np.testing.assert_allclose(SEEN, expected, atol=1e-7)
    rows = (tmp_path / "log.csv").read_text().splitlines()
    column = rows[0].split(",").index("beta")
    assert [float(r.split(",")[column]) for r in rows[1:]] == pytest.approx([linear(7), linear(15)])


class TraceCounter(BetaProbe):
    traces = 0

    def compute_loss(self, *args, **kwargs):
        TraceCounter.traces += 1  # Python runs here only while JAX traces the step
        return super().compute_loss(*args, **kwargs)


@pytest.mark.slow
def test_later_fits_reuse_the_compiled_step_and_a_fit_without_the_callback_keeps_beta():
    model = TraceCounter()
    model.compile(optimizer="sgd")
    with pytest.warns(UserWarning, match="before monotonic_schedule"):
        fit(model, KLAnnealingCallback(model.beta, monotonic_schedule(48)), 1, recompile=False)
    traced = TraceCounter.traces
    with pytest.warns(UserWarning, match="before monotonic_schedule"):
        fit(model, KLAnnealingCallback(model.beta, monotonic_schedule(48)), 2, 1, False)
    assert TraceCounter.traces == traced  # a new callback, an equal schedule: no new trace
    fit(model, keras.callbacks.Callback(), 3, 2, recompile=False)  # no annealing callback
    fit(model, KLAnnealingCallback(model.beta, linear), 4, 3, recompile=False)
    expected = [t / 48 for t in range(16)] + [15 / 48] * 8 + [linear(t) for t in range(24, 32)]
    np.testing.assert_allclose(SEEN, expected, atol=1e-7)
    model.compile(optimizer="sgd")  # a new optimizer: compiled again, from its step 0
    fit(model, KLAnnealingCallback(model.beta, linear), 1, recompile=False)
    np.testing.assert_allclose(SEEN[32:], [linear(t) for t in range(8)], atol=1e-7)


@pytest.mark.parametrize("cyclical", [False, True])
def test_an_annealer_follows_its_own_stepping_from_any_step(cyclical):
    """The step-count rule compiled for an Annealer against the Annealer stepped on the
    host, from every starting step (including total_steps, where a cyclical one wraps)."""
    from kl_schedules.keras import _AnnealerBeta

    for first_step in range(6):
        reference = Annealer(5, "cosine", baseline=0.1, cyclical=cyclical)
        reference.current_step = first_step
        source = _AnnealerBeta(Annealer(5, "cosine", baseline=0.1, cyclical=cyclical))
        source.annealer.current_step = first_step
        source.begin(100)
        traced = jax.jit(source.traced())
        for k in range(13):
            assert source.at(100 + k) == pytest.approx(reference.beta, abs=1e-12)
            assert float(traced(100 + k)) == pytest.approx(reference.beta, abs=1e-6)
            reference.step()
        source.end(113)  # 13 steps after 100
        assert source.annealer.current_step == reference.current_step


@pytest.mark.slow
def test_keras_example_runs_three_modes():
    pytest.importorskip("sklearn")
    import importlib.util
    import pathlib
    import sys

    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "keras_vae.py"
    spec = importlib.util.spec_from_file_location("keras_vae", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["keras_vae"] = module
    spec.loader.exec_module(module)
    results = module.main(["--epochs", "2"])
    assert set(results) == {"constant", "monotonic", "cyclical"}
    assert results["constant"]["betas"] == [1.0, 1.0]
    assert results["monotonic"]["betas"][0] < 1.0  # ramping at the end of epoch 1
    assert all(np.isfinite(r["loss"]) for r in results.values())


TORCH_BACKEND_SCRIPT = """
import os
os.environ["KERAS_BACKEND"] = "torch"
import json
import keras, numpy as np
from kl_schedules import monotonic_schedule
from kl_schedules.keras import KLAnnealingCallback

seen = []
beta = keras.Variable(0.0, trainable=False, name="beta")  # outside the model


class Probe(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
        seen.append(float(keras.ops.convert_to_numpy(beta.value)))
        return beta * 2.0 + 0.0 * keras.ops.sum(y_pred)


class Logged(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logged, self.read = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.logged.append(logs["beta"])
        self.read.append(float(keras.ops.convert_to_numpy(beta.value)))


out = {}
x = np.ones((64, 2), "float32")
for name, schedule in [
    ("optax", monotonic_schedule(12)),
    ("python", lambda s: min(1.0, s / 12)),  # a Python branch on the step
]:
    seen.clear()
    model = Probe()
    model.compile(optimizer="sgd")  # the torch backend has no steps_per_execution
    logged = Logged()
    model.fit(x, x[:, :1], batch_size=8, epochs=2, verbose=0, shuffle=False,
              callbacks=[KLAnnealingCallback(beta, schedule), logged])
    out[name] = {"seen": list(seen), "logged": logged.logged, "read": logged.read}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_torch_backend_follows_the_optimizer_too():
    pytest.importorskip("torch")
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", TORCH_BACKEND_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    expected = [linear(t) for t in range(16)]
    for name in ("optax", "python"):  # a Python schedule runs on the host, no JAX error
        for key in ("seen", "logged", "read"):
            np.testing.assert_allclose(out[name][key], expected, atol=1e-7, err_msg=name + key)


# ---- posterior-collapse monitoring ------------------------------------------------------

from kl_schedules.diagnostics import (  # noqa: E402
    CollapseMonitor,
    PosteriorCollapseWarning,
    collapse_metrics,
    mutual_information,
)
from kl_schedules.keras import CollapseMetrics, CollapseMonitorCallback  # noqa: E402

LATENT = 4
# per-dimension scales of the posterior means: variances 0, 0.0025, 0.09, 1 (2 active units)
SCALES = np.array([0.0, 0.05, 0.3, 1.0])


def posterior_batches(count=5, rows=24, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (
            (rng.normal(size=(rows, LATENT)) * SCALES + 0.5).astype("float32"),
            rng.normal(-1.0, 0.3, size=(rows, LATENT)).astype("float32"),
        )
        for _ in range(count)
    ]


@pytest.mark.slow
def test_collapse_metrics_agree_with_the_diagnostics_on_the_same_rows():
    metric = CollapseMetrics(latent_dim=LATENT)
    batches = posterior_batches()
    for mu, logvar in batches:
        metric.update_state(mu, logvar)
    mu = np.concatenate([m for m, _ in batches]).astype(np.float64)
    logvar = np.concatenate([v for _, v in batches]).astype(np.float64)
    result = {k: float(keras.ops.convert_to_numpy(v)) for k, v in metric.result().items()}
    reference = collapse_metrics(mu, logvar, key=0)
    np.testing.assert_allclose(result["kl"], float(reference["kl"]), rtol=1e-5)
    assert result["active_units"] == float(reference["active_units"]) == 2.0
    monitor = CollapseMonitor(window=len(mu))  # the host monitor on all rows at once
    host = monitor.update(mu, logvar, step=0)
    np.testing.assert_allclose(result["kl"], host["kl"], rtol=1e-5)
    assert result["active_units"] == host["active_units"]
    # the batch-by-batch merged variance is the population variance of all rows
    variance = keras.ops.convert_to_numpy(metric.m2.value) / float(metric.rows.value)
    np.testing.assert_allclose(variance, mu.var(axis=0), rtol=1e-4, atol=1e-7)


def test_mutual_information_is_the_diagnostics_estimate_with_the_same_draw():
    if keras.backend.backend() != "jax":
        pytest.skip("the draw is compared with jax.random under the JAX backend")
    import jax.numpy as jnp

    metric = CollapseMetrics(latent_dim=LATENT, seed=7)
    (mu1, lv1), (mu2, lv2) = posterior_batches(count=2)
    metric.update_state(mu1, lv1)
    # keras.random draws with the seed generator's state [seed, k] as the jax key, k = 0, 1, ...
    first = mutual_information(jnp.asarray(mu1), jnp.asarray(lv1), key=jnp.array([7, 0], "uint32"))
    mi = metric.result()["mutual_information"]
    np.testing.assert_allclose(float(mi), float(first), rtol=1e-5, atol=1e-6)
    metric.update_state(mu2, lv2)  # a new draw: the mean of the batches' estimates
    second = mutual_information(jnp.asarray(mu2), jnp.asarray(lv2), key=jnp.array([7, 1], "uint32"))
    mi = metric.result()["mutual_information"]
    np.testing.assert_allclose(float(mi), (float(first) + float(second)) / 2, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_mutual_information_facts():
    collapsed = CollapseMetrics(latent_dim=3)
    collapsed.update_state(np.zeros((32, 3)), np.zeros((32, 3)))
    result = collapsed.result()
    assert float(result["mutual_information"]) == pytest.approx(0.0, abs=1e-6)
    assert float(result["kl"]) == 0.0 and float(result["active_units"]) == 0.0
    clusters = CollapseMetrics(latent_dim=1)  # two far-apart, equally likely clusters
    clusters.update_state(np.repeat([[-50.0], [50.0]], 16, axis=0), np.zeros((32, 1)))
    assert float(clusters.result()["mutual_information"]) == pytest.approx(np.log(2), abs=1e-5)
    clusters.reset_state()
    assert float(clusters.result()["kl"]) == 0.0 and float(clusters.rows.value) == 0.0


class MonitoredVAE(keras.Model):
    """A VAE whose encoder gives ``mu = x[:, :2]``, ``logvar = x[:, 2:4] / 10`` (fixed, so
    the epoch's metrics are known in closed form), or a collapsed posterior (0, 0)."""

    def __init__(self, collapsed, **kwargs):
        super().__init__(**kwargs)
        self.collapsed = collapsed
        self.decoder = keras.layers.Dense(6)
        self.collapse = CollapseMetrics(latent_dim=2)

    def call(self, x):
        mu, logvar = x[:, :2], x[:, 2:4] / 10.0
        if self.collapsed:
            mu, logvar = keras.ops.zeros_like(mu), keras.ops.zeros_like(logvar)
        return self.decoder(mu), mu, logvar

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
        reconstruction, mu, logvar = y_pred
        self.collapse.update_state(mu, logvar)
        kl = -0.5 * keras.ops.sum(1.0 + logvar - mu**2 - keras.ops.exp(logvar), axis=-1)
        return keras.ops.mean(keras.ops.sum((reconstruction - x) ** 2, axis=-1) + kl)


def monitored_fit(collapsed, tmp_path, steps_per_execution=1, epochs=5):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(64, 6)).astype("float32")
    model = MonitoredVAE(collapsed)
    model.compile(optimizer="adam", steps_per_execution=steps_per_execution)
    callback = CollapseMonitorCallback(patience=2)
    csv = tmp_path / f"log_{collapsed}.csv"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PosteriorCollapseWarning)
        history = model.fit(
            x,
            batch_size=16,  # 4 optimizer steps per epoch
            epochs=epochs,
            verbose=0,
            validation_data=(x[:16],),
            callbacks=[callback, keras.callbacks.CSVLogger(str(csv))],
        )
    collapse_warnings = [w for w in caught if issubclass(w.category, PosteriorCollapseWarning)]
    seed_state = keras.ops.convert_to_numpy(model.collapse._seed_generator.state.value)
    return x, history.history, callback, collapse_warnings, csv.read_text(), seed_state


@pytest.mark.slow
def test_a_fit_logs_the_metrics_every_epoch_and_a_healthy_latent_does_not_warn(tmp_path):
    x, history, callback, caught, csv, seed = monitored_fit(False, tmp_path, steps_per_execution=2)
    mu, logvar = x[:, :2].astype(np.float64), x[:, 2:4].astype(np.float64) / 10.0
    reference = collapse_metrics(mu, logvar, key=0)  # every row, once per epoch
    for key in ("kl", "active_units", "mutual_information", "val_kl"):
        assert len(history[key]) == 5, key
    np.testing.assert_allclose(history["kl"], float(reference["kl"]), rtol=1e-5)
    assert history["active_units"] == [2.0] * 5
    assert all(0.0 < mi <= np.log(16) for mi in history["mutual_information"])
    header = csv.splitlines()[0].split(",")
    assert {"kl", "active_units", "mutual_information", "val_kl"} <= set(header)
    assert caught == [] and not callback.monitor.collapsed
    # a new draw of z at every update (20 train + 5 validation), also in a compiled step
    assert seed.tolist() == [0, 25]


@pytest.mark.slow
def test_a_collapsed_posterior_warns_once_naming_the_step(tmp_path):
    _, history, callback, caught, _, _ = monitored_fit(True, tmp_path)
    assert history["kl"] == [0.0] * 5 and history["active_units"] == [0.0] * 5
    assert len(caught) == 1  # patience 2 epochs: flagged at the end of epoch 2 (step 8)
    assert str(caught[0].message).startswith("posterior collapse at step 8:")
    assert callback.monitor.collapsed and callback.monitor.collapse_step == 8


def test_collapse_monitor_callback_and_metric_reject_bad_arguments():
    with pytest.raises(TypeError, match="not both"):
        CollapseMonitorCallback(CollapseMonitor(), patience=2)
    with pytest.raises(TypeError, match="monitor must be"):
        CollapseMonitorCallback(object())
    with pytest.raises(ValueError, match="patience"):
        CollapseMonitorCallback(patience=0)
    with pytest.raises(ValueError, match="latent_dim"):
        CollapseMetrics(latent_dim=0)
    with pytest.raises(ValueError, match="threshold"):
        CollapseMetrics(latent_dim=2, threshold=-1.0)
    metric = CollapseMetrics(latent_dim=2)
    with pytest.raises(ValueError, match=r"shape \[batch, 2\]"):
        metric.update_state(np.zeros((4, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"got \(4, 2\) and \(5, 2\)"):
        metric.update_state(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="sample_weight"):
        metric.update_state(np.zeros((4, 2)), np.zeros((4, 2)), sample_weight=np.ones(4))


def test_collapse_monitor_callback_names_the_missing_metrics():
    x = np.zeros((8, 2), "float32")
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(KeyError, match="CollapseMetrics"):
        model.fit(x, x, epochs=1, verbose=0, callbacks=[CollapseMonitorCallback()])


TORCH_MONITOR_SCRIPT = """
import os
os.environ["KERAS_BACKEND"] = "torch"
import json, warnings
import keras, numpy as np
from kl_schedules.diagnostics import PosteriorCollapseWarning
from kl_schedules.keras import CollapseMetrics, CollapseMonitorCallback


class VAE(keras.Model):
    def __init__(self, collapsed):
        super().__init__()
        self.collapsed = collapsed
        self.decoder = keras.layers.Dense(6)
        self.collapse = CollapseMetrics(latent_dim=2)

    def call(self, x):
        mu, logvar = x[:, :2], x[:, 2:4] / 10.0
        if self.collapsed:
            mu, logvar = keras.ops.zeros_like(mu), keras.ops.zeros_like(logvar)
        return self.decoder(mu), mu, logvar

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, **kwargs):
        reconstruction, mu, logvar = y_pred
        self.collapse.update_state(mu, logvar)
        return keras.ops.mean(keras.ops.sum((reconstruction - x) ** 2, axis=-1))


x = np.random.default_rng(1).normal(size=(64, 6)).astype("float32")
out = {}
for collapsed in (False, True):
    model = VAE(collapsed)
    model.compile(optimizer="adam")
    callback = CollapseMonitorCallback(patience=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PosteriorCollapseWarning)
        history = model.fit(x, batch_size=16, epochs=4, verbose=0, callbacks=[callback])
    out[str(collapsed)] = {
        "history": history.history,
        "warnings": [str(w.message) for w in caught if w.category is PosteriorCollapseWarning],
        "collapse_step": callback.monitor.collapse_step,
    }
print(json.dumps(out))
"""


@pytest.mark.slow
def test_collapse_monitoring_under_the_torch_backend():
    pytest.importorskip("torch")
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", TORCH_MONITOR_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    x = np.random.default_rng(1).normal(size=(64, 6)).astype("float32")
    mu, logvar = x[:, :2].astype(np.float64), x[:, 2:4].astype(np.float64) / 10.0
    reference = collapse_metrics(mu, logvar, key=0)
    healthy, collapsed = out["False"], out["True"]
    np.testing.assert_allclose(healthy["history"]["kl"], float(reference["kl"]), rtol=1e-5)
    assert healthy["history"]["active_units"] == [2.0] * 4
    assert len(healthy["history"]["mutual_information"]) == 4
    assert healthy["warnings"] == [] and healthy["collapse_step"] is None
    assert len(collapsed["warnings"]) == 1 and collapsed["collapse_step"] == 8

"""KLAnnealingCallback inside a compiled model.fit (JAX backend): the loss sees beta change."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

from kl_schedules import Annealer, cyclical_schedule, monotonic_schedule  # noqa: E402
from kl_schedules.keras import KLAnnealingCallback  # noqa: E402


class BetaProbe(keras.Model):
    """Loss = beta * 2.0 exactly (the weight has no effect on it); records nothing else."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.beta = keras.Variable(0.0, trainable=False, name="beta")

    def call(self, x):
        return self.dense(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self.beta * 2.0 + 0.0 * keras.ops.sum(y_pred)


def fit(schedule, update, epochs=3, batches=4):
    model = BetaProbe()
    model.compile(optimizer="sgd", jit_compile=True)
    callback = KLAnnealingCallback(model.beta, schedule, update=update)
    data = np.ones((batches * 8, 2), dtype="float32")
    history = model.fit(
        data, epochs=epochs, batch_size=8, verbose=0, callbacks=[callback], shuffle=False
    )
    return history.history, model, callback


def test_per_batch_updates_reach_the_compiled_loss():
    assert keras.backend.backend() == "jax"
    history, model, _ = fit(monotonic_schedule(total_steps=8), "batch")
    betas = [min(t / 8, 1.0) for t in range(12)]
    # Keras reports the running mean of the per-batch loss over each epoch
    expected = [2.0 * np.mean(betas[4 * e : 4 * e + 4]) for e in range(3)]
    np.testing.assert_allclose(history["loss"], expected, rtol=1e-5)
    assert float(model.beta.value) == pytest.approx(1.0)
    assert history["beta"] == pytest.approx([betas[3], betas[7], betas[11]])


def test_per_epoch_updates_with_cyclical_schedule():
    history, _, _ = fit(cyclical_schedule(period=2, ratio=0.5), "epoch", epochs=4)
    np.testing.assert_allclose(history["loss"], [0.0, 2.0, 0.0, 2.0], atol=1e-6)


def test_annealer_drives_the_variable():
    annealer = Annealer(total_steps=2, cyclical=True)
    history, _, _ = fit(annealer, "epoch", epochs=4)
    np.testing.assert_allclose(history["loss"], [0.0, 1.0, 0.0, 1.0], atol=1e-6)
    assert annealer.current_step == 0


def test_untracked_variable_is_rejected_under_jax():
    model = BetaProbe()
    model.compile(optimizer="sgd")
    loose = keras.Variable(0.0, trainable=False)
    callback = KLAnnealingCallback(loose, monotonic_schedule(4))
    with pytest.raises(ValueError, match="tracked by the model"):
        model.fit(np.ones((8, 2), "float32"), epochs=1, verbose=0, callbacks=[callback])


def test_bad_arguments():
    beta = keras.Variable(0.0, trainable=False)
    with pytest.raises(ValueError, match="update"):
        KLAnnealingCallback(beta, monotonic_schedule(4), update="step")
    with pytest.raises(ValueError, match="non-trainable"):
        KLAnnealingCallback(keras.Variable(0.0), monotonic_schedule(4))
    with pytest.raises(TypeError, match="beta"):
        KLAnnealingCallback(0.5, monotonic_schedule(4))
    with pytest.raises(TypeError, match="schedule"):
        KLAnnealingCallback(beta, 3)


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

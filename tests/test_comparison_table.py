"""docs/comparison.md stays true: every row's kl_schedules cell has a check here that
exercises the behaviour the cell claims (the table lists each row once, and a row added
without a check fails)."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kl_schedules import (
    Annealer,
    annealing,
    cyclical_schedule,
    describe,
    epochs_on_steps,
    from_dict,
    monotonic_schedule,
    steps_on_epochs,
)
from kl_schedules.control import (
    GECO,
    PIController,
    capacity_objective,
    capacity_schedule,
    free_bits,
    geco,
    kl_balance,
    pi_controller,
)

TABLE = Path(__file__).resolve().parent.parent / "docs" / "comparison.md"


def rows() -> list[str]:
    lines = [line for line in TABLE.read_text().splitlines() if line.startswith("| ")]
    return [line.split("|")[1].strip() for line in lines[1:]]  # skip the header


def monotonic_shapes():
    for shape in ("linear", "cosine", "logistic", jnp.sqrt):
        schedule = monotonic_schedule(10, shape, start=0.2, end=0.8, delay=5)
        assert float(schedule(5)) == np.float32(0.2) and float(schedule(15)) == np.float32(0.8)


def cyclical_holds_and_cycles():
    schedule = cyclical_schedule(1000 / 3, ratio=0.3, hold_start=0.2, num_cycles=2)
    assert float(schedule(60)) == 0.0 and float(schedule(700)) == 1.0
    assert float(schedule(400)) == 0.0  # second cycle's hold


def epochs_or_steps():
    assert float(epochs_on_steps(monotonic_schedule(2), 10)(15)) == 0.5
    assert float(epochs_on_steps(monotonic_schedule(2), 10, hold=False)(15)) == 0.75
    assert float(steps_on_epochs(monotonic_schedule(20), 10)(1)) == 0.5


def keras_fit(schedule, epochs, initial_epoch=0, model=None, beta=None):
    """A Keras fit (8 steps an epoch, 4 steps an execution) of a model whose loss is a beta
    defined outside it; returns the model, its beta and the running mean loss logged at each
    execution's end, which is the mean of the betas the compiled steps used."""
    keras = pytest.importorskip("keras")
    from kl_schedules.keras import KLAnnealingCallback

    class Losses(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.logged = []

        def on_train_batch_end(self, batch, logs=None):
            self.logged.append(float(logs["loss"]))

    if model is None:
        beta = keras.Variable(0.0, trainable=False, name="outside_beta")
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile(
            optimizer="sgd",
            loss=lambda y, p: beta * 1.0 + 0.0 * keras.ops.sum(p),
            steps_per_execution=4,
        )
    losses = Losses()
    model.fit(
        np.ones((8, 2), "float32"),
        np.ones((8, 1), "float32"),
        batch_size=1,
        epochs=epochs,
        initial_epoch=initial_epoch,
        verbose=0,
        shuffle=False,
        callbacks=[KLAnnealingCallback(beta, schedule), losses],
    )
    return model, beta, losses.logged


def warns_when_too_long():
    assert not describe(monotonic_schedule(100), 50).reaches_final
    assert describe(monotonic_schedule(100), 101).reaches_final
    with pytest.warns(UserWarning, match="ends after 16 optimizer steps") as caught:
        keras_fit(monotonic_schedule(100), epochs=2)
    assert len(caught) == 1


def exact_under_jit():
    for total in range(1, 200):
        assert float(jax.jit(monotonic_schedule(total))(total)) == 1.0
    assert float(jax.jit(cyclical_schedule(10, num_cycles=1))(jnp.uint32(2**32 - 1))) == 1.0


def pi_antiwindup():
    control = pi_controller(target_kl=1.0, k_i=1e-2, beta_max=0.1)
    state = control.init()
    for _ in range(500):
        state = control.update(state, 10.0)  # KL far above target: beta saturates at 0.1
    assert float(state.beta) == pytest.approx(0.1, abs=1e-3) and float(state.integral) <= 0.1
    assert float(control.update(state, 0.0).beta) < 0.1  # leaves saturation at once
    assert PIController(1.0).update(10.0) > 0


def pi_moving_average():
    host = PIController(2.0, window=3)
    for kl in (1.0, 2.0, 6.0):
        host.update(kl)
    assert host.recent_kl == [6.0, 2.0, 1.0]


def geco_log_space():
    state = geco(goal=1.0, step_size=1e3).init()
    state = geco(goal=1.0, step_size=1e3).update(state, -1e9)
    assert math.isfinite(float(state.beta))
    assert GECO(1.0, 0.1).update(2.0) < 1.0


def capacity():
    assert float(capacity_objective(12.0, capacity_schedule(25.0, 100)(50), 1000.0)) == 500.0


def free_bits_groups():
    assert float(free_bits(np.array([0.1, 0.1, 2.0, 0.0]), 0.5, groups=2)) == 2.5


def balancing():
    _, gamma = kl_balance(np.array([[3.0, 1.0]]), beta=0.5)
    assert gamma[0] > 1 > gamma[1] and kl_balance(np.array([[3.0, 1.0]]), beta=1.0)[1][0] == 1


def pure_functions():
    fns = annealing(10)
    _, betas = jax.lax.scan(lambda s, _: (fns.step(s), fns.beta(s)), fns.init(), length=12)
    assert float(betas[10]) == 1.0
    assert jax.vmap(cyclical_schedule(4))(jnp.arange(8)).shape == (8,)


def values():
    schedule = cyclical_schedule(1000 / 3, 0.5, "cosine", num_cycles=2)
    assert from_dict(json.loads(json.dumps(schedule.to_dict()))) == schedule
    assert pickle.loads(pickle.dumps(schedule)) == schedule and hash(schedule)


def torch_compile():
    torch = pytest.importorskip("torch")
    annealer = Annealer(10, "cosine", cyclical=True)
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    def loss(kld):
        return annealer(kld)

    torch._dynamo.reset()
    try:
        compiled = torch.compile(loss, backend=counting_backend, fullgraph=True)
        for _ in range(40):
            assert torch.equal(compiled(torch.tensor(2.0)), loss(torch.tensor(2.0)))
            annealer.step()
    finally:
        torch._dynamo.reset()
    assert 1 <= len(graphs) <= 2  # the beta of every step, without a compilation per step


def keras_callback():
    schedule = monotonic_schedule(12)

    def mean_beta(first, last):  # the betas of optimizer steps first .. last
        return np.mean([float(schedule(t)) for t in range(first, last + 1)])

    model, beta, logged = keras_fit(schedule, epochs=2)
    # an execution of 4 steps uses 4 betas (no staircase): the epoch's running means
    want = [mean_beta(e * 8, e * 8 + k) for e in (0, 1) for k in (3, 7)]
    np.testing.assert_allclose(logged, want, atol=1e-6)
    # a resumed fit with a new callback continues from the optimizer's iterations
    _, _, logged = keras_fit(schedule, epochs=3, initial_epoch=2, model=model, beta=beta)
    np.testing.assert_allclose(logged, [mean_beta(16, 19), mean_beta(16, 23)], atol=1e-6)


def checkpoints():
    annealer = Annealer(10, cyclical=True)
    annealer.step()
    assert pickle.loads(pickle.dumps(annealer)).state_dict() == annealer.state_dict()


SLOW = {keras_callback, warns_when_too_long, exact_under_jit}  # Keras fits; 200 jit compilations

CHECKS = {
    "Monotonic warm-up with a choice of shapes": monotonic_shapes,
    "Cyclical annealing with holds and a finite number of cycles": cyclical_holds_and_cycles,
    "Warm-up written in epochs or in steps": epochs_or_steps,
    "Warns when the warm-up is longer than training": warns_when_too_long,
    "Exact at every integer step, under jit, for int32 and uint32 steps": exact_under_jit,
    "PI control of beta with working anti-windup": pi_antiwindup,
    "PI control on a moving average of the KL": pi_moving_average,
    "GECO (a constraint on the reconstruction)": geco_log_space,
    "Capacity annealing": capacity,
    "Free bits, per dimension or per group": free_bits_groups,
    "KL balancing for hierarchical VAEs": balancing,
    "Pure functions inside jit / vmap / scan": pure_functions,
    "Schedules as values (equality, hashing, JSON round trip)": values,
    "Inside `torch.compile` without recompiling": torch_compile,
    "Keras callback that follows the optimizer": keras_callback,
    "Checkpoints of the whole state": checkpoints,
}


def test_every_row_has_a_check():
    assert rows() == list(CHECKS)


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(row, marks=[pytest.mark.slow] * (check in SLOW))
        for row, check in CHECKS.items()
    ],
)
def test_our_cell_of_each_row_holds(row):
    CHECKS[row]()

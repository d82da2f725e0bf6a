"""docs/comparison.md stays true: every row's kl_schedules cell has a check here."""

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


def warns_when_too_long():
    assert not describe(monotonic_schedule(100), 50).reaches_final
    source = (Path(__file__).parent / "test_keras.py").read_text()
    assert "def test_warns_once_when_the_schedule_cannot_finish_within_the_fit" in source


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
    source = (Path(__file__).parent / "test_torch_compile.py").read_text()
    assert "def test_compiles_at_most_twice_over_200_steps" in source and "fullgraph" in source


def keras_callback():
    source = (Path(__file__).parent / "test_keras.py").read_text()
    for test in (
        "test_steps_per_execution_advances_at_the_optimizers_pace",
        "test_resumed_fit_with_a_new_callback_continues_the_schedule",
        "test_beta_defined_outside_the_model_reaches_the_compiled_step",
    ):
        assert f"def {test}" in source


def checkpoints():
    annealer = Annealer(10, cyclical=True)
    annealer.step()
    assert pickle.loads(pickle.dumps(annealer)).state_dict() == annealer.state_dict()


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


@pytest.mark.parametrize("row", list(CHECKS))
def test_our_cell_of_each_row_holds(row):
    CHECKS[row]()

"""The pure annealer (AnnealerState) against a transcription of the documented Annealer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kl_schedules import AnnealerState, annealing
from tests.reference import DocumentedAnnealer

SHAPES = ["linear", "cosine", "logistic"]

# an action is "step", or ("toggle", flag)
actions_st = st.lists(
    st.one_of(st.just("step"), st.tuples(st.just("toggle"), st.booleans())), max_size=60
)


@given(
    st.sampled_from(SHAPES),
    st.integers(1, 40),
    st.floats(0.0, 1.0),
    st.booleans(),
    actions_st,
)
def test_matches_documented_annealer(shape, total, baseline, cyclical, actions):
    reference = DocumentedAnnealer(total, shape, baseline, cyclical)
    fns = annealing(total, shape, baseline)
    state = fns.init(cyclical)
    step, set_cyclical = jax.jit(fns.step), jax.jit(fns.set_cyclical)
    for action in actions:
        if action == "step":
            reference.step()
            state = step(state)
        else:
            reference.set_cyclical(action[1])
            state = set_cyclical(state, jnp.asarray(action[1]))
        assert int(state.step) == reference.current_step
        assert float(fns.beta(state)) == pytest.approx(reference.slope(), abs=2e-6)


def test_toggle_example_cyclical_plain_cyclical():
    # cyclical until epoch 30, then plain (climbs to full and holds), cyclical again from 70.
    total = 10
    fns, reference = annealing(total), DocumentedAnnealer(total, cyclical=True)
    state = fns.init(cyclical=True)
    betas, expected = [], []
    for epoch in range(100):
        if epoch == 30:
            state, _ = fns.set_cyclical(state, False), reference.set_cyclical(False)
        if epoch == 70:
            state, _ = fns.set_cyclical(state, True), reference.set_cyclical(True)
        betas.append(float(fns.beta(state)))
        expected.append(reference.slope())
        state = fns.step(state)
        reference.step()
    np.testing.assert_allclose(betas, expected, atol=1e-6)
    assert betas[29] == pytest.approx(0.9)  # cyclical peak (T - 1) / T, no plateau
    assert betas[45:70] == [1.0] * 25  # plain: saturated and held
    assert betas[70] == 1.0 and betas[71] == 0.0  # saturated, then reset to 0 on next step


def test_logistic_no_overflow_for_huge_total_steps():
    fns = annealing(10**9, "logistic")
    state = fns.init()
    assert float(fns.beta(state)) == 0.0
    state = state._replace(step=jnp.int32(10**9 // 2))
    assert float(fns.beta(state)) == pytest.approx(0.5)
    state = state._replace(step=jnp.int32(10**9))
    assert float(fns.beta(state)) == 1.0


def test_logistic_value_for_t5_matches_reference_range():
    fns = annealing(5, "logistic")
    state = fns.init()
    assert float(fns.beta(state)) == pytest.approx(0.0759, abs=1e-4)
    for _ in range(5):
        state = fns.step(state)
    assert float(fns.beta(state)) == pytest.approx(0.9241, abs=1e-4)


def test_scan_over_a_million_steps():
    total = 1000
    fns = annealing(total, "cosine", baseline=0.1)

    def body(state, _):
        return fns.step(state), fns.beta(state)

    final, betas = jax.jit(lambda s: jax.lax.scan(body, s, length=10**6))(fns.init(True))
    s = np.arange(10**6) % total  # cyclical: visits 0..T-1 forever
    expected = ((1 - np.cos(np.pi * s / total)) / 2) * 0.9 + 0.1
    np.testing.assert_allclose(np.asarray(betas), expected, atol=2e-6)
    assert int(final.step) == 10**6 % total


def test_vmap_over_a_batch_of_states():
    fns = annealing(7, "linear")
    states = jax.vmap(fns.init)(jnp.array([True, False, True, False]))
    states = states._replace(step=jnp.array([0, 3, 6, 7], dtype=jnp.int32))
    stepped = jax.vmap(fns.step)(states)
    np.testing.assert_array_equal(np.asarray(stepped.step), [1, 4, 0, 7])
    np.testing.assert_allclose(np.asarray(jax.vmap(fns.beta)(stepped)), [1 / 7, 4 / 7, 0, 1])


def test_state_is_an_immutable_pytree_of_scalars():
    state = annealing(5).init()
    assert isinstance(state, AnnealerState)
    assert state.step.dtype == jnp.int32 and state.step.shape == ()
    assert state.cyclical.dtype == jnp.bool_
    assert len(jax.tree_util.tree_leaves(state)) == 2
    with pytest.raises(AttributeError):
        state.step = 3  # type: ignore[misc]


def test_flax_serialization_round_trip():
    serialization = pytest.importorskip("flax.serialization")
    fns = annealing(6, "logistic", baseline=0.2)
    state = fns.init(cyclical=True)
    for _ in range(4):
        state = fns.step(state)
    restored = serialization.from_bytes(fns.init(), serialization.to_bytes(state))
    for _ in range(10):
        assert float(fns.beta(restored)) == float(fns.beta(state))
        assert bool(restored.cyclical) == bool(state.cyclical)
        state, restored = fns.step(state), fns.step(restored)


def test_orbax_round_trip(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    fns = annealing(6, "cosine")
    state = fns.init(cyclical=True)
    for _ in range(3):
        state = fns.step(state)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "ckpt", state)
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(tmp_path / "ckpt", fns.init())
    assert isinstance(restored, AnnealerState)
    for _ in range(10):
        assert float(fns.beta(restored)) == float(fns.beta(state))
        state, restored = fns.step(state), fns.step(restored)


SHARDED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from kl_schedules import annealing, cyclical_schedule

    assert jax.device_count() == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    fns = annealing(4, "linear")
    schedule = cyclical_schedule(period=4, ratio=0.5)
    w = jnp.ones((16, 3))
    x = jax.device_put(jnp.ones((64, 16)), NamedSharding(mesh, P("data")))
    tx = optax.sgd(1e-3)

    @jax.jit
    def train_step(w, opt_state, ann, step, x):
        def loss_fn(w):
            z = x @ w
            kl = jnp.mean(jnp.sum(z**2, axis=-1))
            return jnp.mean((z - 1.0) ** 2) + fns.beta(ann) * kl + schedule(step) * kl
        loss, g = jax.value_and_grad(loss_fn)(w)
        updates, opt_state = tx.update(g, opt_state)
        return optax.apply_updates(w, updates), opt_state, fns.step(ann), step + 1, fns.beta(ann)

    ann, step, opt_state = fns.init(cyclical=True), jnp.int32(0), tx.init(w)
    betas = []
    for _ in range(6):
        w, opt_state, ann, step, beta = train_step(w, opt_state, ann, step, x)
        betas.append(float(beta))
    assert betas == [0.0, 0.25, 0.5, 0.75, 0.0, 0.25], betas
    print("SHARDED_OK", len(x.sharding.device_set))
    """
)


def test_inside_a_train_step_sharded_over_8_devices():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    result = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHARDED_OK 8" in result.stdout

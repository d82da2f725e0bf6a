"""The Annealer: the host class (the documented numbers to 1e-12, its API, no JAX per step,
checkpoints) and the pure ``annealing`` functions with their ``AnnealerState`` (under jit, vmap,
scan and sharding), each against a transcription of the documented Annealer."""

from __future__ import annotations

import copy
import io
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kl_schedules import Annealer, AnnealerState, annealing, cyclical_schedule
from kl_schedules.control import PIController
from tests.reference import (
    SHAPES,
    DocumentedAnnealer,
    actions_st,
    advanced_host_objects,
    continue_run,
)

# ---- the host Annealer and the pure functions against the documented Annealer -------------


@pytest.mark.slow
@given(st.sampled_from(SHAPES), st.integers(1, 60), st.floats(0.0, 1.0), st.booleans(), actions_st)
def test_host_and_jitted_pure_give_the_documented_annealers_weights(
    shape, total, baseline, cyclical, actions
):
    ours = Annealer(total, shape, baseline, cyclical)
    reference = DocumentedAnnealer(total, shape, baseline, cyclical)
    pure = annealing(total, shape, baseline)
    state = pure.init(cyclical)
    step, set_cyclical = jax.jit(pure.step), jax.jit(pure.set_cyclical)
    for action in [*actions, "step"]:
        assert ours.current_step == reference.current_step == int(state.step)
        assert abs(ours.beta - reference.slope()) <= 1e-12
        assert abs(ours(3.0) - reference(3.0)) <= 3e-12
        assert float(pure.beta(state)) == pytest.approx(reference.slope(), abs=2e-6)  # float32
        if action == "step":
            ours.step(), reference.step()
            state = step(state)
        else:
            ours.set_cyclical(action[1]), reference.set_cyclical(action[1])
            state = set_cyclical(state, jnp.asarray(action[1]))


def test_toggle_example_host_and_pure_and_both_cyclical_setter_forms():
    # cyclical until epoch 30, then plain (climbs to full and holds), cyclical again from 70.
    ours, reference = Annealer(10, cyclical=True), DocumentedAnnealer(10, cyclical=True)
    fns = annealing(10)
    state = fns.init(cyclical=True)
    betas, expected = [], []
    for epoch in range(100):
        if epoch == 30:
            ours.cyclical_setter(False)  # documented call form
            reference.set_cyclical(False)
            state = fns.set_cyclical(state, False)
        if epoch == 70:
            ours.cyclical_setter = True  # documented assignment form
            reference.set_cyclical(True)
            state = fns.set_cyclical(state, True)
        assert ours.beta == pytest.approx(reference.slope(), abs=1e-12)
        betas.append(float(fns.beta(state)))
        expected.append(reference.slope())
        ours.step()
        reference.step()
        state = fns.step(state)
    np.testing.assert_allclose(betas, expected, atol=1e-6)
    assert betas[29] == pytest.approx(0.9)  # cyclical peak (T - 1) / T, no plateau
    assert betas[45:70] == [1.0] * 25  # plain: saturated and held
    assert betas[70] == 1.0 and betas[71] == 0.0  # saturated, then reset to 0 on next step
    assert ours.cyclical is True
    with pytest.raises(TypeError, match="value"):
        ours.cyclical_setter = "no"


@pytest.mark.parametrize("total", [1419, 1420, 5000, 10**9])
def test_logistic_never_overflows(total):
    # 1 / (1 + e^(T/2)) = e^(-T/2) / (1 + e^(-T/2)), which is e^(-T/2) to float64 precision
    annealer = Annealer(total, "logistic")
    assert annealer.beta == pytest.approx(math.exp(-total / 2), rel=1e-9, abs=0.0)
    annealer.current_step = total // 2
    expected = 1 / (1 + math.exp(total / 2 - total // 2))  # small exponent: safe here
    assert annealer.beta == pytest.approx(expected, abs=1e-12)
    annealer.current_step = total // 2 + 3
    assert annealer.beta == pytest.approx(1 / (1 + math.exp(total / 2 - total // 2 - 3)))
    annealer.current_step = total
    assert annealer.beta == pytest.approx(1.0, abs=1e-12)
    # the pure form, in float32
    fns = annealing(total, "logistic")
    state = fns.init()
    assert float(fns.beta(state)) == 0.0
    state = state._replace(step=jnp.int32(total // 2))
    assert float(fns.beta(state)) == pytest.approx(expected, abs=2e-6)
    state = state._replace(step=jnp.int32(total))
    assert float(fns.beta(state)) == 1.0


def test_logistic_value_for_t5_matches_reference_range():
    fns = annealing(5, "logistic")
    state = fns.init()
    assert float(fns.beta(state)) == pytest.approx(0.0759, abs=1e-4)
    for _ in range(5):
        state = fns.step(state)
    assert float(fns.beta(state)) == pytest.approx(0.9241, abs=1e-4)


# ---- the host Annealer's API ----------------------------------------------------------------


def test_call_disabled_returns_argument_itself():
    annealer = Annealer(10, disable=True)
    kld = object()
    assert annealer(kld) is kld
    assert annealer.beta == 1.0


def test_float_in_float_out():
    annealer = Annealer(4)
    annealer.step()
    out = annealer(2.0)
    assert isinstance(out, float) and out == 0.5


def test_torch_tensor_keeps_autograd_dtype_device():
    torch = pytest.importorskip("torch")
    annealer = Annealer(4, "cosine")
    annealer.step()
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        kld = torch.tensor(2.0, dtype=dtype, requires_grad=True)
        out = annealer(kld)
        assert out.dtype == dtype and out.device == kld.device and out.requires_grad
        out.backward()
        expected = (1 - math.cos(math.pi / 4)) / 2
        assert kld.grad.item() == pytest.approx(expected, rel=1e-2)


def test_state_dict_json_round_trip_and_resume():
    annealer = Annealer(7, "logistic", 0.1, cyclical=True)
    for _ in range(9):
        annealer.step()
    state = json.loads(json.dumps(annealer.state_dict()))
    resumed = Annealer(1)
    resumed.load_state_dict(state)
    for _ in range(20):
        assert resumed.beta == annealer.beta
        assert resumed.current_step == annealer.current_step
        resumed.step(), annealer.step()
    assert repr(resumed) == repr(annealer)


def test_state_dict_with_torch_save():
    torch = pytest.importorskip("torch")
    annealer = Annealer(5, "cosine")
    annealer.step()
    buffer = io.BytesIO()
    torch.save({"annealer": annealer.state_dict()}, buffer)
    buffer.seek(0)
    resumed = Annealer(5)
    resumed.load_state_dict(torch.load(buffer, weights_only=True)["annealer"])
    assert resumed.beta == annealer.beta


def test_load_state_dict_validates():
    annealer = Annealer(5)
    good = annealer.state_dict()
    with pytest.raises(ValueError, match="missing"):
        annealer.load_state_dict({"current_step": 1})
    with pytest.raises(ValueError, match="current_step"):
        annealer.load_state_dict({**good, "current_step": 6})
    with pytest.raises(ValueError, match="shape"):
        annealer.load_state_dict({**good, "shape": "tanh"})


def test_public_attributes_and_setters_revalidate():
    annealer = Annealer(10, "cosine", 0.25)
    assert (annealer.current_step, annealer.total_steps, annealer.shape) == (0, 10, "cosine")
    assert (annealer.baseline, annealer.cyclical, annealer.disable) == (0.25, False, False)
    annealer.total_steps = 20
    annealer.current_step = 10
    assert annealer.beta == pytest.approx(0.5 * 0.75 + 0.25)
    with pytest.raises(ValueError, match="baseline"):
        annealer.baseline = 2.0
    with pytest.raises(TypeError, match="total_steps"):
        annealer.total_steps = True


def test_numpy_and_torch_integer_total_steps():
    assert Annealer(np.int16(12)).total_steps == 12
    torch = pytest.importorskip("torch")
    assert Annealer(torch.tensor(12)).total_steps == 12
    assert type(Annealer(torch.tensor(12)).total_steps) is int


def test_no_jax_on_the_per_step_path():
    annealer = Annealer(100, "logistic", 0.1, cyclical=True)
    annealer(1.0)  # warm
    calls: list[str] = []

    def profiler(frame, event, arg):
        if event in ("call", "c_call"):
            module = frame.f_globals.get("__name__", "")
            name = getattr(arg, "__module__", None) if event == "c_call" else module
            if (name or "").startswith(("jax", "jaxlib")):
                calls.append(str(name))

    sys.setprofile(profiler)
    try:
        for _ in range(150):
            annealer.step()
            annealer(2.0)
            _ = annealer.beta
    finally:
        sys.setprofile(None)
    assert calls == []


# ---- the host Annealer: beta in [baseline, 1] whatever is assigned ---------------------------


assignments = st.lists(
    st.one_of(
        st.tuples(st.just("current_step"), st.integers(-5, 40)),
        st.tuples(st.just("total_steps"), st.integers(-2, 40)),
        st.tuples(st.just("baseline"), st.floats(-0.5, 1.5)),
        st.tuples(st.just("shape"), st.sampled_from(["linear", "cosine", "logistic", "sine"])),
        st.tuples(st.just("cyclical"), st.sampled_from([True, False, np.True_, 1, "yes"])),
        st.tuples(st.just("step"), st.none()),
    ),
    max_size=40,
)


@given(assignments)
def test_no_assignment_puts_beta_outside_baseline_and_one(actions):
    annealer = Annealer(10, "cosine", baseline=0.2)
    for name, value in actions:
        if name == "step":
            annealer.step()
        else:
            before = annealer.state_dict()
            try:
                setattr(annealer, name, value)
            except ValueError:  # every rejection is a ValueError (TypeError too, for types)
                assert annealer.state_dict() == before  # and changes nothing
        assert annealer.baseline <= annealer.beta <= 1.0
        assert 0 <= annealer.current_step <= annealer.total_steps


def test_the_reported_cases_raise_naming_the_attribute():
    annealer = Annealer(10)
    for _ in range(8):
        annealer.step()
    with pytest.raises(ValueError, match="total_steps must be >= current_step"):
        annealer.total_steps = 4  # beta would be 2.0
    with pytest.raises(ValueError, match="current_step"):
        annealer.current_step = -3  # beta would be -0.3
    with pytest.raises(ValueError, match="current_step"):
        annealer.current_step = 11
    annealer.current_step = 2  # the documented way to shrink: step first
    annealer.total_steps = 4
    assert annealer.beta == 0.5


def test_a_numpy_string_shape_is_stored_as_a_plain_string():
    annealer = Annealer(5, shape=np.str_("cosine"))
    assert type(annealer.shape) is str and "np.str_" not in repr(annealer)
    assert type(cyclical_schedule(10, shape=np.str_("cosine")).shape) is str


# ---- host objects (Annealer and the controllers) survive pickle and deepcopy ---------------


@pytest.mark.parametrize(
    "round_trip",
    [lambda objs: pickle.loads(pickle.dumps(objs)), copy.deepcopy],
    ids=["pickle", "deepcopy"],
)
def test_whole_objects_round_trip_and_continue_identically(round_trip):
    """(torch.save: in test_torch.py.)"""
    originals = advanced_host_objects()
    copies = round_trip(originals)
    for original, restored in zip(originals, copies, strict=True):
        assert type(restored) is type(original) and restored is not original
        assert repr(restored) == repr(original)
        assert restored.state_dict() == original.state_dict()
    assert continue_run(*copies) == continue_run(*originals)


def test_pickled_state_is_validated():
    rebuild, args = Annealer(5).__reduce__()
    module, name, state = args
    state["current_step"] = 9  # past total_steps
    with pytest.raises(ValueError, match="current_step"):
        rebuild(module, name, state)
    with pytest.raises(ValueError, match="not a kl_schedules host object"):
        rebuild("os", "system", state)


def test_objects_pickled_by_the_previous_version_still_load():
    """The previous format: the class, then ``__setstate__({"config", "state"})``, with
    controllers' states holding no settings."""
    annealer = Annealer.__new__(Annealer)
    annealer.__setstate__(
        {
            "config": {"total_steps": 7, "shape": "cosine"},
            "state": {
                "current_step": 3,
                "total_steps": 7,
                "shape": "cosine",
                "baseline": 0.1,
                "cyclical": True,
                "disable": False,
            },
        }
    )
    assert repr(annealer) == repr(Annealer(7, "cosine", 0.1, cyclical=True)).replace(
        "current_step=0", "current_step=3"
    )
    controller = PIController.__new__(PIController)
    config = {"target_kl": 2.0, "k_p": 0.01, "k_i": 0.01, "beta_min": 0.0, "beta_max": 1.0}
    controller.__setstate__(
        {"config": {**config, "window": 1}, "state": {"beta": 0.25, "integral": 0.2}}
    )
    assert controller.beta == 0.25 and controller.integral == 0.2


# ---- the pure functions and AnnealerState ---------------------------------------------------


@pytest.mark.slow
@given(total=st.integers(1, 3000), shape=st.sampled_from(["linear", "cosine"]))
def test_annealing_reaches_one_exactly_under_jit(total, shape):
    fns = annealing(total, shape, baseline=0.0)
    state = fns.init()._replace(step=jnp.int32(total))
    assert float(jax.jit(fns.beta)(state)) == 1.0
    assert float(jax.jit(fns.beta)(fns.init())) == 0.0


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


@pytest.mark.slow
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


@pytest.mark.slow  # a fresh JAX process with 8 host devices
def test_inside_a_train_step_sharded_over_8_devices():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    result = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHARDED_OK 8" in result.stdout

"""The host Annealer: the documented numbers to 1e-12, its API, and no JAX per step."""

from __future__ import annotations

import io
import json
import math
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kl_schedules
from kl_schedules import Annealer, annealing
from tests.reference import DocumentedAnnealer

SHAPES = ["linear", "cosine", "logistic"]
actions_st = st.lists(
    st.one_of(st.just("step"), st.tuples(st.just("toggle"), st.booleans())), max_size=80
)


@given(st.sampled_from(SHAPES), st.integers(1, 60), st.floats(0.0, 1.0), st.booleans(), actions_st)
def test_same_weights_as_documented_annealer(shape, total, baseline, cyclical, actions):
    ours = Annealer(total, shape, baseline, cyclical)
    reference = DocumentedAnnealer(total, shape, baseline, cyclical)
    pure = annealing(total, shape, baseline)
    state = pure.init(cyclical)
    for action in [*actions, "step"]:
        assert ours.current_step == reference.current_step
        assert abs(ours.beta - reference.slope()) <= 1e-12
        assert abs(ours(3.0) - reference(3.0)) <= 3e-12
        assert abs(ours.beta - float(pure.beta(state))) <= 2e-6  # float32 vs float64
        if action == "step":
            ours.step(), reference.step()
            state = pure.step(state)
        else:
            ours.set_cyclical(action[1]), reference.set_cyclical(action[1])
            state = pure.set_cyclical(state, action[1])


def test_toggle_example_and_both_cyclical_setter_forms():
    ours, reference = Annealer(10, cyclical=True), DocumentedAnnealer(10, cyclical=True)
    for epoch in range(100):
        if epoch == 30:
            ours.cyclical_setter(False)  # documented call form
            reference.set_cyclical(False)
        if epoch == 70:
            ours.cyclical_setter = True  # documented assignment form
            reference.set_cyclical(True)
        assert ours.beta == pytest.approx(reference.slope(), abs=1e-12)
        ours.step()
        reference.step()
    assert ours.cyclical is True
    with pytest.raises(TypeError, match="value"):
        ours.cyclical_setter = "no"


@pytest.mark.parametrize("total", [1419, 1420, 5000, 10**9])
def test_logistic_never_overflows(total):
    annealer = Annealer(total, "logistic")
    assert annealer.beta == pytest.approx(0.0, abs=1e-300) or annealer.beta >= 0.0
    annealer.current_step = total // 2
    expected = 1 / (1 + math.exp(total / 2 - total // 2))  # small exponent: safe here
    assert annealer.beta == pytest.approx(expected, abs=1e-12)
    annealer.current_step = total // 2 + 3
    assert annealer.beta == pytest.approx(1 / (1 + math.exp(total / 2 - total // 2 - 3)))
    annealer.current_step = total
    assert annealer.beta == pytest.approx(1.0, abs=1e-12)


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


def test_importing_the_package_is_light():
    code = (
        "import sys, kl_schedules; "
        "bad = [m for m in ('torch', 'flax', 'keras', 'matplotlib') if m in sys.modules]; "
        "assert not bad, bad"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)
    assert kl_schedules.Annealer is Annealer

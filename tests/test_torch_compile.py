"""Host objects inside torch.compile, used as the documented loop uses them: a module-level
annealer or controller read by a compiled function. Counts compilations and compares the
value the compiled function actually used with eager."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kl_schedules import Annealer  # noqa: E402
from kl_schedules.control import GECO, PIController  # noqa: E402

# Module-level objects, as in the README loop.
annealer = Annealer(total_steps=10, shape="cosine", baseline=0.1, cyclical=True)
controller = PIController(target_kl=3.0, k_i=1e-2)
geco_control = GECO(goal=1.0, step_size=0.05)


class CountingBackend:
    """A torch.compile backend that counts how often dynamo hands it a new graph."""

    def __init__(self):
        self.compiles = 0

    def __call__(self, graph_module, example_inputs):
        self.compiles += 1
        return graph_module.forward


def step_function(kld, kl):
    """The three reads a loss makes: annealer(kld), and .beta of each object."""
    return annealer(kld), annealer.beta * kl, controller.beta * kl, geco_control.beta * kl


def drive(compiled, steps=200):
    """Runs ``steps`` steps with step() calls, cyclical and disable toggles, a
    load_state_dict and controller updates; returns the compiled outputs and eager outputs
    of every step."""
    saved = annealer.state_dict()
    got, expected = [], []
    kld, kl = torch.tensor(2.0), torch.full((4,), 3.0)
    for t in range(steps):
        if t == 30:
            annealer.set_cyclical(False)
        if t == 70:
            annealer.cyclical_setter = True
        if t == 120:
            annealer.load_state_dict(saved)
        if t in (150, 160):
            annealer.disable = t == 150
        got.append([x.detach().clone() for x in compiled(kld, kl)])
        expected.append(list(step_function(kld, kl)))
        annealer.step()
        controller.update(5.0 - 0.01 * t)
        geco_control.update(1.5 - 0.01 * t)
    return got, expected


@pytest.fixture(autouse=True)
def fresh_objects():
    torch._dynamo.reset()
    for obj, state in (
        (annealer, Annealer(10, "cosine", 0.1, True).state_dict()),
        (controller, PIController(3.0, k_i=1e-2).state_dict()),
        (geco_control, GECO(1.0, 0.05).state_dict()),
    ):
        obj.load_state_dict(state)
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("fullgraph", [False, True])
def test_compiles_at_most_twice_over_200_steps(fullgraph):
    backend = CountingBackend()
    compiled = torch.compile(step_function, backend=backend, fullgraph=fullgraph)
    got, expected = drive(compiled)
    assert backend.compiles <= 2, backend.compiles
    for step, (ours, eager) in enumerate(zip(got, expected, strict=True)):
        for a, b in zip(ours, eager, strict=True):
            assert a.dtype == b.dtype, step
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"step {step}")
    # the compiled function saw beta move: wrap, hold, restored state, disabled (1.0)
    betas = [float(g[0]) / 2.0 for g in got]
    assert len(set(betas)) > 5 and max(betas) <= 1.0 and min(betas) >= 0.1 - 1e-7
    assert set(betas[150:160]) == {1.0} and betas[160] < 1.0


def test_beta_is_exact_for_a_float64_loss_when_float64_is_the_default_dtype():
    """Compiled ``.beta`` is a tensor of the default dtype: float64 losses set it so."""
    backend = CountingBackend()
    compiled = torch.compile(step_function, backend=backend, fullgraph=True)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        kld, kl = torch.tensor(2.0), torch.full((4,), 3.0)
        for _ in range(20):
            for ours, eager in zip(compiled(kld, kl), step_function(kld, kl), strict=True):
                assert ours.dtype == eager.dtype == torch.float64
                assert torch.equal(ours, eager)
            annealer.step()
            controller.update(5.0)
            geco_control.update(1.5)
    finally:
        torch.set_default_dtype(default)
    assert backend.compiles <= 2


def test_inductor_values_equal_eager_without_recompiling():
    torch._dynamo.utils.counters.clear()
    compiled = torch.compile(step_function, fullgraph=True)  # the default backend, inductor
    got, expected = drive(compiled, steps=25)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 2
    for step, (ours, eager) in enumerate(zip(got, expected, strict=True)):
        for a, b in zip(ours, eager, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"step {step}")


@pytest.mark.parametrize("backend", ["counting", "inductor"])
def test_annealer_call_has_the_numbers_and_dtype_of_eager_kld_times_beta(backend):
    compiled = torch.compile(
        lambda kld: annealer(kld),
        backend=CountingBackend() if backend == "counting" else "inductor",
        fullgraph=True,
    )
    generator = torch.Generator().manual_seed(0)
    cases = [
        torch.randn((), generator=generator, dtype=torch.float64).to(dtype) * 10
        for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16)
    ] + [torch.randn(64, generator=generator).to(torch.bfloat16), torch.randn(64)]
    for _ in range(7):
        annealer.step()
        for kld in cases:
            ours = compiled(kld)
            assert ours.dtype == kld.dtype
            assert torch.equal(ours, kld * annealer.beta), (kld.dtype, kld.shape)
            assert torch.equal(annealer(kld), kld * annealer.beta)  # eager: the float path


def test_disabled_annealer_returns_its_argument_in_compiled_code():
    backend = CountingBackend()
    compiled = torch.compile(lambda kld: annealer(kld) + 0.0, backend=backend, fullgraph=True)
    annealer.disable = True
    try:
        assert float(compiled(torch.tensor(2.0))) == 2.0
    finally:
        annealer.disable = False
    assert float(compiled(torch.tensor(2.0))) == pytest.approx(2 * annealer.beta)


# ---- stepping the objects inside the compiled function --------------------------------------


def test_annealer_stepped_inside_the_compiled_function_gives_eagers_betas():
    """The whole train step compiled, ``step()`` inside it: the compiled function runs
    ``step()`` eagerly (a graph break, two graphs) and returns eager's numbers."""

    def train_step(kld):
        loss = stepped(kld)
        stepped.step()
        return loss, stepped.beta * kld

    stepped = Annealer(20)
    backend = CountingBackend()
    compiled = torch.compile(train_step, backend=backend)
    kld = torch.tensor(3.0)
    got = [compiled(kld) for _ in range(12)]
    stepped = Annealer(20)
    expected = [train_step(kld) for _ in range(12)]
    assert backend.compiles <= 2, backend.compiles  # the graphs before and after step()
    for step, (ours, eager) in enumerate(zip(got, expected, strict=True)):
        for a, b in zip(ours, eager, strict=True):
            assert torch.equal(a, b), (step, a, b)
    assert [float(g[0]) / 3.0 for g in got[:3]] == pytest.approx([0.0, 0.05, 0.1])


def test_stepping_inside_a_fullgraph_compiled_function_raises_saying_where_to_step():
    stepped = Annealer(20)

    def train_step(kld):
        stepped.step()
        return stepped(kld)

    compiled = torch.compile(train_step, backend=CountingBackend(), fullgraph=True)
    with pytest.raises(Exception, match="outside the compiled function"):
        compiled(torch.tensor(1.0))
    assert stepped.current_step == 0  # nothing happened


@pytest.mark.parametrize(
    "make,feed",
    [
        (lambda: PIController(target_kl=3.0, k_i=1e-2), lambda t: 6.0 - 0.3 * t),
        (lambda: GECO(goal=1.0, step_size=0.05), lambda t: 1.5 - 0.1 * t),
    ],
    ids=["PIController", "GECO"],
)
def test_controller_updated_inside_the_compiled_function_gives_eagers_betas(make, feed):
    def train_step(kl):
        beta = control.update(kl.mean())  # a 0-d tensor inside compiled code
        return beta * kl, control.beta * kl

    control = make()
    backend = CountingBackend()
    compiled = torch.compile(train_step, backend=backend)
    kls = [torch.full((4,), feed(t)) for t in range(12)]
    got = [compiled(kl) for kl in kls]
    control = make()
    expected = [train_step(kl) for kl in kls]
    assert backend.compiles <= 2, backend.compiles  # the graphs before and after update()
    for step, (ours, eager) in enumerate(zip(got, expected, strict=True)):
        for a, b in zip(ours, eager, strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b), (step, a, b)
    assert len({float(g[0][0]) for g in got}) > 5  # beta moved


@pytest.mark.parametrize("fullgraph", [False, True])
def test_controller_update_inside_fullgraph_raises_or_is_right(fullgraph):
    control = PIController(target_kl=3.0)
    compiled = torch.compile(
        lambda kl: control.update(kl) * kl, backend=CountingBackend(), fullgraph=fullgraph
    )
    if fullgraph:
        with pytest.raises(Exception, match="outside the compiled function"):
            compiled(torch.tensor(5.0))
        assert control.beta == 0.0
    else:
        eager = PIController(target_kl=3.0).update(5.0) * torch.tensor(5.0)
        assert torch.equal(compiled(torch.tensor(5.0)), eager)


# ---- a first compiled read under inference_mode (a sanity check before training) -----------


def test_a_first_compiled_read_in_inference_mode_does_not_break_later_updates():
    """Fresh objects, so that their beta mirrors are made by the read in inference mode."""
    fresh = Annealer(10, "cosine"), PIController(3.0, k_i=1e-2), GECO(1.0, 0.05)

    def reads(kld, kl):
        return fresh[0](kld), fresh[0].beta * kl, fresh[1].beta * kl, fresh[2].beta * kl

    backend = CountingBackend()
    compiled = torch.compile(reads, backend=backend, fullgraph=True)
    kld, kl = torch.tensor(2.0), torch.full((4,), 3.0)
    with torch.inference_mode():
        first = compiled(kld, kl)  # the mirrors are made here
    for ours, eager in zip(first, reads(kld, kl), strict=True):
        assert torch.equal(ours, eager)
    for _ in range(12):
        fresh[0].step()  # raised "Inplace update to inference tensor outside InferenceMode"
        fresh[1].update(5.0)
        fresh[2].update(1.5)
        for ours, eager in zip(compiled(kld, kl), reads(kld, kl), strict=True):
            assert torch.equal(ours, eager)
    with torch.inference_mode():  # and validation again, mid-training
        for ours, eager in zip(compiled(kld, kl), reads(kld, kl), strict=True):
            assert torch.equal(ours, eager)
    assert backend.compiles <= 2  # one graph for inference mode, one for training


FRESH_PROCESS_STEP = """
import gc, sys, weakref
import torch
from kl_schedules import Annealer
from kl_schedules.control import GECO

annealer = Annealer(20)  # made before torch's compiler is imported
dropped = GECO(1.0, 0.1)
alive = weakref.ref(dropped)
del dropped
gc.collect()
assert alive() is None, "a host object outlived its last reference"
assert "torch._dynamo" not in sys.modules


class CountingBackend:
    compiles = 0

    def __call__(self, graph_module, example_inputs):
        CountingBackend.compiles += 1
        return graph_module.forward


def train_step(kld):
    loss = annealer(kld)
    annealer.step()
    return loss


compiled = torch.compile(train_step, backend=CountingBackend())
got = [compiled(torch.tensor(3.0)) for _ in range(10)]
annealer = Annealer(20)
expected = [train_step(torch.tensor(3.0)) for _ in range(10)]
assert all(torch.equal(a, b) for a, b in zip(got, expected)), (got, expected)
assert CountingBackend.compiles <= 2, CountingBackend.compiles
print("ok", CountingBackend.compiles)
"""


@pytest.mark.slow
def test_objects_made_before_torch_compile_is_first_used_compile_twice_at_most(tmp_path):
    """The usual script: the annealer exists before ``torch.compile`` imports torch's
    compiler. (A fresh process, since this test suite has long imported it.)"""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "fresh.py"
    script.write_text(FRESH_PROCESS_STEP)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")

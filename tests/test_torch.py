"""kl_schedules.torch: VAELoss against hand-written formulas; the host objects inside
torch.compile (counting compilations, comparing the value the compiled function actually used
with eager); torch.save/torch.load with weights_only; and the documented loop under
torch.distributed (gloo)."""

from __future__ import annotations

import copy
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402

from kl_schedules import Annealer  # noqa: E402
from kl_schedules.control import GECO, PIController  # noqa: E402
from kl_schedules.torch import VAELoss  # noqa: E402
from tests.reference import advanced_host_objects, continue_run  # noqa: E402

# ---- host objects inside torch.compile ---------------------------------------------------------

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
    """Resets dynamo and the module-level objects before and after every test here."""
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


@pytest.mark.slow  # inductor: a C++ compiler run on a cold cache
def test_inductor_values_equal_eager_without_recompiling():
    torch._dynamo.utils.counters.clear()
    compiled = torch.compile(step_function, fullgraph=True)  # the default backend, inductor
    got, expected = drive(compiled, steps=25)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] <= 2
    for step, (ours, eager) in enumerate(zip(got, expected, strict=True)):
        for a, b in zip(ours, eager, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"step {step}")


@pytest.mark.parametrize("backend", ["counting", pytest.param("inductor", marks=pytest.mark.slow)])
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
    script = tmp_path / "fresh.py"
    script.write_text(FRESH_PROCESS_STEP)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")


# ---- VAELoss -----------------------------------------------------------------------------


torch = pytest.importorskip("torch")


def reference_terms(x, x0, mu, logvar):
    x, x0, mu, logvar = (np.asarray(a, dtype=np.float64) for a in (x, x0, mu, logvar))
    bce = -(x0 * np.log(x) + (1 - x0) * np.log(1 - x))
    recon = bce.reshape(len(x), -1).sum(axis=1)
    kld = -0.5 * (1 + logvar - mu**2 - np.exp(logvar)).sum(axis=1)
    return recon, kld


def random_batch(seed=0, batch=5, features=(3, 4), latent=6):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *features, generator=gen) * 0.98 + 0.01
    x0 = (torch.rand(batch, *features, generator=gen) > 0.5).float()
    mu = torch.randn(batch, latent, generator=gen)
    logvar = torch.randn(batch, latent, generator=gen)
    return x, x0, mu, logvar


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_reference(reduction):
    x, x0, mu, logvar = random_batch()
    recon, kld = VAELoss(reduction=reduction)(x, x0, mu, logvar)
    ref_recon, ref_kld = reference_terms(x, x0, mu, logvar)
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction]
    np.testing.assert_allclose(recon.detach().numpy(), reduce(ref_recon), rtol=1e-5)
    np.testing.assert_allclose(kld.detach().numpy(), reduce(ref_kld), rtol=1e-5)
    if reduction != "none":
        assert recon.ndim == 0 and kld.ndim == 0


def test_argument_order_is_reconstruction_then_input():
    # With x0 binary and x soft, swapping arguments gives a different (wrong) number.
    x0 = torch.tensor([[1.0, 0.0]])
    x = torch.tensor([[0.9, 0.2]])
    recon, _ = VAELoss()(x, x0, torch.zeros(1, 1), torch.zeros(1, 1))
    assert recon.item() == pytest.approx(-math.log(0.9) - math.log(0.8), rel=1e-6)


def test_from_logits_equals_probabilities():
    x, x0, mu, logvar = random_batch(1)
    logits = torch.logit(x)
    a = VAELoss()(x, x0, mu, logvar)
    b = VAELoss(from_logits=True)(logits, x0, mu, logvar)
    for u, v in zip(a, b, strict=True):
        assert u.item() == pytest.approx(v.item(), rel=1e-5)


def test_from_logits_stable_for_huge_logits():
    x0 = torch.tensor([[1.0, 0.0]])
    recon, _ = VAELoss(from_logits=True)(
        torch.tensor([[200.0, -200.0]]), x0, torch.zeros(1, 1), torch.zeros(1, 1)
    )
    assert torch.isfinite(recon) and recon.item() == pytest.approx(0.0, abs=1e-6)


def test_finite_for_extreme_logvar_and_gradients_flow():
    x, x0, _, _ = random_batch(2, latent=2)
    x = x.clone().requires_grad_(True)
    mu = torch.zeros(5, 2, requires_grad=True)
    logvar = torch.tensor([[-30.0, 30.0]] * 5, requires_grad=True)
    recon, kld = VAELoss()(x, x0, mu, logvar)
    annealer = Annealer(10)
    annealer.step()
    loss = recon + annealer(kld)
    assert torch.isfinite(loss)
    loss.backward()
    for tensor in (x, mu, logvar):
        assert tensor.grad is not None and torch.all(torch.isfinite(tensor.grad))
    assert logvar.grad.abs().sum() > 0


def test_runs_under_autocast_in_float32():
    x, x0, mu, logvar = random_batch(3)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        recon, kld = VAELoss()(x.bfloat16(), x0, mu.bfloat16(), logvar.bfloat16())
    assert recon.dtype == torch.float32 and kld.dtype == torch.float32
    assert torch.isfinite(recon) and torch.isfinite(kld)


def test_shape_mismatch_errors():
    x, x0, mu, logvar = random_batch()
    with pytest.raises(ValueError, match=r"x .*x0"):
        VAELoss()(x, x0[:, :2], mu, logvar)
    with pytest.raises(ValueError, match="mu and logvar"):
        VAELoss()(x, x0, mu, logvar[:, :3])
    with pytest.raises(ValueError, match="batch"):
        VAELoss()(x, x0, mu[:2], logvar[:2])


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="reduction"):
        VAELoss(reduction="avg")
    with pytest.raises(TypeError, match="from_logits"):
        VAELoss(from_logits=1)


@pytest.mark.parametrize("from_logits", [False, True])
def test_float64_inputs_give_float64_terms_and_pass_gradcheck(from_logits):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 5, generator=generator, dtype=torch.float64) * 0.8 + 0.1
    x0 = torch.rand(3, 5, generator=generator, dtype=torch.float64)
    mu = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    logvar = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    criterion = VAELoss(from_logits=from_logits)
    recon, kld = criterion(x, x0, mu, logvar)
    assert recon.dtype == kld.dtype == torch.float64
    inputs = tuple(t.clone().requires_grad_() for t in (x, mu, logvar))
    assert torch.autograd.gradcheck(
        lambda x, mu, logvar: criterion(x, x0, mu, logvar), inputs, eps=1e-6, atol=1e-7
    )


def test_half_precision_inputs_still_give_float32_terms():
    half = [torch.full((2, 3), 0.5, dtype=torch.bfloat16), torch.ones(2, 3, dtype=torch.float16)]
    recon, kld = VAELoss()(*half, torch.zeros(2, 2, dtype=torch.float16), torch.zeros(2, 2))
    assert recon.dtype == kld.dtype == torch.float32


# ---- whole host objects through torch.save / torch.load (weights_only) -------------------


def test_whole_objects_round_trip_torch_save_and_continue_identically():
    """(pickle and deepcopy: in test_annealer.py.)"""
    originals = advanced_host_objects()
    buffer = io.BytesIO()
    torch.save({"objects": originals}, buffer)
    buffer.seek(0)
    copies = torch.load(buffer)["objects"]  # torch's default: weights_only=True
    for original, restored in zip(originals, copies, strict=True):
        assert type(restored) is type(original) and restored is not original
        assert repr(restored) == repr(original)
        assert restored.state_dict() == original.state_dict()
    assert continue_run(*copies) == continue_run(*originals)


CHECKPOINT_LOADER = """
import sys, torch
from kl_schedules import Annealer
objects = torch.load(sys.argv[1])  # torch's default: weights_only=True
annealer, controller, geco_control = objects["objects"]
print(repr(annealer)); print(repr(controller)); print(repr(geco_control))
"""


@pytest.mark.slow  # a fresh Python process importing torch
def test_torch_load_with_weights_only_needs_no_kl_schedules_torch_import(tmp_path):
    """In a fresh process that imports only ``Annealer`` from kl_schedules (before torch),
    a checkpoint holding all three host objects loads with ``weights_only=True``."""
    originals = advanced_host_objects()
    path = tmp_path / "checkpoint.pt"
    torch.save({"objects": originals}, path)
    script = tmp_path / "load.py"
    script.write_text(CHECKPOINT_LOADER)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [repr(obj) for obj in originals]


def test_a_copy_has_its_own_torch_mirror():
    annealer = Annealer(4)
    twin = copy.deepcopy(annealer)
    twin.step()
    assert annealer(torch.tensor(1.0)).item() == 0.0
    assert twin(torch.tensor(1.0)).item() == 0.25


# ---- the documented loop under torch.distributed (gloo, 2 processes) ---------------------


# The documented loop under torch.distributed (gloo, 2 processes on this machine).
#
# Every rank must see the same beta at every step, and a checkpoint saved on rank 0 must
# restore every rank. The annealer agrees across ranks by construction (it depends only on
# the step); a feedback controller agrees only if every rank feeds it the same measurement,
# so the loop all-reduces the batch KL first (and the test shows that without it, the ranks
# drift apart).

WORLD = 2


STEPS = 40


def all_equal_across_ranks(values):
    """True if the list of floats ``values`` is identical on every rank."""
    mine = torch.tensor(values, dtype=torch.float64)
    gathered = [torch.empty_like(mine) for _ in range(WORLD)]
    dist.all_gather(gathered, mine)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def mean_across_ranks(value):
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return total / WORLD


def worker(rank, directory):
    from kl_schedules.control import PIController
    from kl_schedules.torch import Annealer, VAELoss

    dist.init_process_group(
        "gloo", init_method=f"file://{directory}/store", rank=rank, world_size=WORLD
    )
    torch.manual_seed(rank)  # each rank sees its own data, as under a DistributedSampler
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(16, 2 * 4 + 16))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = VAELoss(from_logits=True)
    annealer = Annealer(total_steps=10, shape="cosine", cyclical=True)
    controller = PIController(target_kl=1.0, k_i=1e-2)  # fed the all-reduced KL
    local = PIController(target_kl=1.0, k_i=1e-2)  # fed this rank's KL: the pitfall
    trace, local_trace = [], []
    for step in range(STEPS):
        if step == 25:
            annealer.set_cyclical(False)
        x0 = (torch.rand(8, 16) < 0.3).float()
        out = model(x0)
        mu, logvar, logits = out[:, :4], out[:, 4:8], out[:, 8:]
        recon, kld = criterion(logits, x0, mu, logvar)
        loss = recon + annealer(kld) + controller.beta * kld
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        annealer.step()
        controller.update(mean_across_ranks(kld))
        local.update(kld.detach())
        trace.append([annealer.beta, controller.beta])
        local_trace.append(local.beta)
    same_beta = all_equal_across_ranks([b for row in trace for b in row])
    local_same = all_equal_across_ranks(local_trace)

    # rank 0 saves, every rank restores (state_dicts and whole objects)
    if rank == 0:
        torch.save(
            {"annealer": annealer.state_dict(), "controller": controller.state_dict()},
            f"{directory}/state.pt",
        )
        torch.save({"annealer": annealer, "controller": controller}, f"{directory}/whole.pt")
    dist.barrier()
    state = torch.load(f"{directory}/state.pt")
    whole = torch.load(f"{directory}/whole.pt")
    restored_annealer, restored_controller = Annealer(1), PIController(target_kl=1.0, k_i=1e-2)
    restored_annealer.load_state_dict(state["annealer"])
    restored_controller.load_state_dict(state["controller"])
    restored_ok = all(
        a.state_dict() == annealer.state_dict() and c.state_dict() == controller.state_dict()
        for a, c in (
            (restored_annealer, restored_controller),
            (whole["annealer"], whole["controller"]),
        )
    )
    dist.barrier()
    with open(f"{directory}/rank{rank}.json", "w") as handle:
        json.dump(
            {
                "same_beta": same_beta,
                "local_same": local_same,
                "restored_ok": restored_ok,
                "betas": trace,
            },
            handle,
        )
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_documented_loop_under_torch_distributed(tmp_path):
    import torch.multiprocessing as mp

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for report in reports:
        assert report["same_beta"], "ranks saw different betas"
        assert report["restored_ok"], "a rank did not restore rank 0's checkpoint"
        # without the all-reduce, per-rank controllers drift apart: the pitfall is real
        assert not report["local_same"]
    assert reports[0]["betas"] == reports[1]["betas"]
    annealer_betas = [row[0] for row in reports[0]["betas"]]
    assert annealer_betas[9] == 0.0 and max(annealer_betas[:25]) < 1.0  # cyclical wrap
    assert annealer_betas[-1] == 1.0  # plain from step 25: climbs to full and holds

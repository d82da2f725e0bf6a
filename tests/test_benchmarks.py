"""The benchmark runner keeps working (tiny sizes; no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "benchmarks" / "run.py"


@pytest.fixture
def benchmarks_path(monkeypatch):
    """The benchmarks folder importable (as the runner makes it), and the device variable
    the runner sets restored afterwards."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setenv("KL_SCHEDULES_BENCH_DEVICE", "unset")  # restored after the test
    monkeypatch.delenv("KL_SCHEDULES_BENCH_DEVICE")


def run_runner(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's kl_schedules
    return subprocess.run(
        [sys.executable, str(RUNNER), *args], capture_output=True, text=True, env=env, timeout=900
    )


def test_every_benchmark_imports_only_public_names():
    for path in (ROOT / "benchmarks").glob("*.py"):
        text = path.read_text()
        assert "kl_schedules._" not in text, path.name


@pytest.mark.slow
def test_runner_tiny_mode_writes_the_documented_json(tmp_path):
    out = tmp_path / "bench.json"
    result = run_runner("--tiny", "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) >= {"device", "backend", "torch_device", "versions", "results"}
    assert report["backend"] == "cpu" and "jax" in report["versions"]
    assert report["torch_device"] == "cpu" and report["torch_device_name"] == "cpu"
    expected = {
        "train_step_overhead/cyclical",
        "train_step_overhead/monotonic_logistic",
        "train_step_overhead/annealer_state",
        "vectorized_eval",
        "scan_annealer/linear",
        "scan_annealer/cosine",
        "host_annealer/float",
        "compile_time/cyclical",
        "torch_compile_step/annealer",
        "torch_compile_step/pi_controller",
        "torch_compile_step/reduce_overhead/annealer",
        "torch_compile_step/reduce_overhead/pi_controller",
        "vae_loss/forward",
        "vae_loss/forward_backward",
        "vae_loss/readme_train_step",
        "keras_callback/jax",
        "keras_callback/torch",
        "lightning_step/callback",
        "lightning_step/callback_pi",
        "collapse_metrics",
    }
    assert expected <= set(report["results"])
    for name, row in report["results"].items():
        assert isinstance(row["ratio"], float) and row["ratio"] > 0, name
    assert report["results"]["vectorized_eval"]["speedup_vs_numpy_loop"] > 0
    assert "train_step_overhead/annealer_state" in result.stdout  # the printed table
    assert len(report["results"]["train_step_overhead/cyclical"]["per_process_ratios"]) == 1
    assert report["results"]["scan_annealer/linear"]["floor_ratio"] > 0
    for kind in ("annealer", "pi_controller"):  # beta changed every step: no recompilation
        assert report["results"][f"torch_compile_step/{kind}"]["recompiles_while_timed"] == 0
        row = report["results"][f"torch_compile_step/reduce_overhead/{kind}"]
        assert row["device"] == "cpu" and row["cudagraphs_used"] is False  # CPU: none
        assert row["vs_default_mode_ratio"] > 0

    table = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--markdown", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(report["results"])
    assert "| `vectorized_eval` | **" in table


def test_fu_reference_loop_matches_the_formula_on_integer_grids():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from vectorized_eval import fu_frange_cycle_linear
    finally:
        sys.path.pop(0)
    import numpy as np

    # T = 16, M = 2, R = 0.5: period 8, ramp 4 steps: 0, .25, .5, .75, 1, then held at 1
    expected = np.array([0, 0.25, 0.5, 0.75, 1, 1, 1, 1] * 2)
    np.testing.assert_allclose(fu_frange_cycle_linear(16, n_cycle=2, ratio=0.5), expected)


@pytest.mark.slow
def test_device_option_runs_the_torch_benchmarks_on_the_named_device(tmp_path):
    out = tmp_path / "bench.json"
    result = run_runner(
        "--tiny", "--device", "cpu", "--only", "vae_loss,host_annealer", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["torch_device"] == "cpu" and report["torch_device_name"] == "cpu"
    assert report["command"].endswith(
        "--device cpu --only vae_loss,host_annealer --out " + str(out)
    )
    assert "torch device: cpu" in result.stdout
    names = set(report["results"])
    assert {"vae_loss/forward", "vae_loss/mlp_forward_backward", "host_annealer/torch_0d"} <= names
    for name in names:
        if name.startswith("vae_loss/"):
            assert report["results"][name]["device"] == "cpu", name
            assert report["results"][name]["ratio"] > 0, name


def test_device_cuda_without_cuda_is_a_clear_error(benchmarks_path, monkeypatch, capsys):
    import run
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as error:
        run.main(["--tiny", "--device", "cuda", "--only", "vae_loss"])
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert "--device cuda: torch.cuda.is_available() is False" in message
    assert "use --device cpu" in message
    assert "KL_SCHEDULES_BENCH_DEVICE" not in os.environ  # nothing ran


@pytest.mark.slow
@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the error a CPU-only machine gives"
)
def test_device_cuda_error_from_the_command_line():
    result = run_runner("--tiny", "--device", "cuda", "--only", "vae_loss")
    assert result.returncode == 2 and result.stdout == ""
    assert "torch.cuda.is_available() is False" in result.stderr


def test_device_choices(benchmarks_path, monkeypatch):
    import _harness
    import torch

    for available, auto in ((False, "cpu"), (True, "cuda")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda a=available: a)
        assert _harness.resolve_device("auto") == auto
        assert _harness.resolve_device("cpu") == "cpu"
    assert _harness.resolve_device("cuda") == "cuda"  # (is_available patched to True)
    with pytest.raises(ValueError, match=r"--device must be one of \['auto', 'cpu', 'cuda'\]"):
        _harness.resolve_device("tpu")
    assert _harness.torch_device() == "cpu"  # unset: the CPU
    _harness.use_torch_device("cuda")
    assert _harness.torch_device() == "cuda"


def test_device_argument_is_validated_by_the_parser(benchmarks_path, capsys):
    import run

    with pytest.raises(SystemExit):
        run.main(["--device", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err


def test_vae_loss_baseline_is_the_same_loss_as_vaeloss(benchmarks_path):
    """The hand-written baseline computes VAELoss()'s numbers and gradients, so the ratio
    compares the same loss."""
    import torch
    from vae_loss import by_hand, loss_inputs

    from kl_schedules.torch import VAELoss

    for shape in ((3, 5, 2), (32, 64, 4)):
        ours_in = loss_inputs(shape, "cpu", grad=True)
        hand_in = loss_inputs(shape, "cpu", grad=True)
        ours, hand = VAELoss()(*ours_in), by_hand(*hand_in)
        for a, b in zip(ours, hand, strict=True):
            torch.testing.assert_close(a, b)
        sum(ours).backward()
        sum(hand).backward()
        for a, b in zip(ours_in, hand_in, strict=True):
            assert (a.grad is None) == (b.grad is None)
            if a.grad is not None:
                torch.testing.assert_close(a.grad, b.grad)
    # an independent value: x = 0.5 everywhere, x0 = 1, mu = 0, logvar = 0 -> D log 2, 0
    recon, kld = by_hand(
        torch.full((4, 6), 0.5), torch.ones(4, 6), torch.zeros(4, 2), torch.zeros(4, 2)
    )
    assert abs(recon.item() - 6 * 0.6931471805599453) < 1e-5 and kld.item() == 0.0
    # and a KL by the formula: mu = 1, logvar = log 2 -> -0.5 (1 + log 2 - 1 - 2) per dim
    import math

    _, kld = by_hand(
        torch.full((1, 1), 0.5), torch.ones(1, 1), torch.ones(1, 3), torch.full((1, 3), math.log(2))
    )
    assert abs(kld.item() - 3 * -0.5 * (math.log(2) - 2)) < 1e-5


@pytest.mark.slow
def test_reduce_overhead_on_cpu_makes_no_cuda_graphs():
    """What the torch_compile_step benchmark counts: inductor's cudagraph_skips counter
    rises when mode="reduce-overhead" compiles a graph it cannot capture (here: a CPU one);
    the default mode leaves it alone."""
    code = """
import torch
from torch._dynamo.utils import counters
def f(x):
    return (x * 2).sin().sum()
x = torch.ones(8, requires_grad=True)
torch.compile(f, fullgraph=True)(x).backward()
default = counters["inductor"]["cudagraph_skips"]
torch.compile(lambda x: f(x) + 1, mode="reduce-overhead", fullgraph=True)(x).backward()
print(default, counters["inductor"]["cudagraph_skips"])
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=True
    )
    default, reduce_overhead = map(int, done.stdout.split())
    assert default == 0 and reduce_overhead >= 1

"""The benchmark runner keeps working (tiny sizes; no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_benchmark_imports_only_public_names():
    for path in (ROOT / "benchmarks").glob("*.py"):
        text = path.read_text()
        assert "kl_schedules._" not in text, path.name


def test_runner_tiny_mode_writes_the_documented_json(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) >= {"device", "backend", "versions", "results"}
    assert report["backend"] == "cpu" and "jax" in report["versions"]
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

"""A small timing harness shared by the benchmarks: interleaved rounds, medians, fresh
worker processes, and a description of the machine."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNNER = Path(__file__).resolve().parent / "run.py"
MODES = ("full", "quick", "tiny")
DEVICES = ("auto", "cpu", "cuda")
DEVICE_ENV = "KL_SCHEDULES_BENCH_DEVICE"  # the resolved --device, read by torch benchmarks


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Runs each timing function once per round (A B A B ...), in a shuffled order each
    round so that no candidate always runs first; returns every sample."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            samples[name].append(fns[name]())
    return samples


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def paired_ratio(samples: dict[str, list[float]], ours: str, baseline: str) -> float:
    """Median over rounds of ours / baseline measured in the same round."""
    return median([a / b for a, b in zip(samples[ours], samples[baseline], strict=True)])


def seconds(fn: Callable[[], Any]) -> Callable[[], float]:
    """A timing function: the wall time of one call of ``fn``."""

    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def in_fresh_processes(benchmark: str, mode: str, count: int) -> list[Any]:
    """Runs ``benchmark``'s ``worker(mode)`` in ``count`` fresh processes (on the same torch
    device as this one); returns what each printed as JSON on its last line. A process's
    timings can be biased by a few percent for its whole life, so a median over processes
    is steadier than one long run."""
    outputs = []
    for _ in range(count):
        command = [sys.executable, str(RUNNER), "--worker", benchmark, "--mode", mode]
        done = subprocess.run(
            [*command, "--device", torch_device()], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"worker {benchmark} ({mode}) failed with exit status {done.returncode}:\n"
                f"{done.stderr[-4000:]}"
            )
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return outputs


def resolve_device(choice: str) -> str:
    """The torch device that ``--device choice`` means: ``"cpu"`` or ``"cuda"``.

    ``auto`` is ``cuda`` where ``torch.cuda.is_available()``, else ``cpu`` (also without
    torch). ``cuda`` without a usable CUDA device raises a ValueError that says why."""
    if choice not in DEVICES:
        raise ValueError(f"--device must be one of {list(DEVICES)}, got {choice!r}")
    if choice == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if choice == "cuda":
            raise ValueError(
                "--device cuda needs PyTorch with CUDA, and torch is not installed"
            ) from None
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if choice == "cuda":
        build = (
            f"a CUDA {torch.version.cuda} build that sees no GPU"
            if torch.version.cuda
            else "a CPU-only build"
        )
        raise ValueError(
            f"--device cuda: torch.cuda.is_available() is False (torch {torch.__version__} "
            f"is {build}); use --device cpu, or --device auto to pick CUDA when present"
        )
    return "cpu"


def use_torch_device(device: str) -> None:
    """Makes ``device`` (``"cpu"`` or ``"cuda"``) the one :func:`torch_device` returns, in
    this process and in the workers it starts."""
    os.environ[DEVICE_ENV] = device


def torch_device() -> str:
    """The torch device the torch benchmarks run on (``"cpu"`` unless the runner set one)."""
    return os.environ.get(DEVICE_ENV, "cpu")


def synchronize(device: str) -> None:
    """Waits for the device's queued work (a no-op on the CPU): call it before reading a
    clock, since CUDA kernels run asynchronously."""
    if device != "cpu":
        import torch

        torch.cuda.synchronize()


def describe_torch_device(device: str) -> str:
    """``"cpu"`` or the GPU's name with torch's CUDA version, e.g.
    ``"NVIDIA H200 (cuda, CUDA 12.8)"``."""
    if device == "cpu":
        return "cpu"
    import torch

    return f"{torch.cuda.get_device_name()} (cuda, CUDA {torch.version.cuda})"


def describe_device() -> tuple[str, str]:
    """``(device description, JAX backend name)``."""
    import jax

    backend = jax.default_backend()
    if backend != "cpu":
        device = jax.devices()[0]
        return f"{device.device_kind} ({device.platform})", backend
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"CPU: {name} ({os.cpu_count()} cores)", backend


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for module in ("jax", "jaxlib", "optax", "flax", "numpy", "torch"):
        with contextlib.suppress(ImportError):
            out[module] = __import__(module).__version__
    return out


def markdown_table(report: dict[str, Any]) -> str:
    """The README's table of a results file: one row per benchmark."""

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        if isinstance(value, list):
            return "[" + ", ".join(fmt(v) for v in value) + "]"
        return str(value)

    rows = [
        f"Measured on {report['device']}, JAX {report['versions']['jax']} "
        f"({report['backend']}), torch {report['versions'].get('torch', '-')} "
        f"({report.get('torch_device', 'cpu')}), `{report['command'].strip()}`:",
        "",
        "| benchmark | ratio | target | baseline; details |",
        "|---|---|---|---|",
    ]
    for name, row in report["results"].items():
        details = "; ".join(
            f"{key.replace('_', ' ')} {fmt(value)}"
            for key, value in row.items()
            if key not in ("ratio", "baseline", "target")
        )
        rows.append(
            f"| `{name}` | **{row['ratio']:.3f}** | {row.get('target', '-')} "
            f"| {row['baseline']}; {details} |"
        )
    return "\n".join(rows)

"""kl_schedules benchmarks: is beta free? Ours against a named baseline, interleaved.

    python benchmarks/run.py [--quick | --tiny] [--only NAME,...] [--device DEVICE] [--out FILE]
    python benchmarks/run.py --markdown FILE     # a results file as the README's table

``--device`` (``auto``, the default: ``cuda`` where torch sees a GPU, else ``cpu``) is the
torch device of the torch benchmarks; JAX runs on its own default backend. The results
name both.

Every ratio is (our time) / (baseline time), both measured in the same process in
alternation (A B A B ..., shuffled each round); the median over rounds is reported. Each
benchmark is one file in this folder with a ``run(mode)`` function, importing only the
library's public names; ``_harness.py`` holds the timing helpers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    DEVICES,
    MODES,
    describe_device,
    describe_torch_device,
    markdown_table,
    resolve_device,
    use_torch_device,
    versions,
)

BENCHMARKS = (
    "train_step_overhead",
    "vectorized_eval",
    "scan_annealer",
    "host_annealer",
    "compile_time",
    "torch_compile_step",
    "vae_loss",
    "keras_callback",
    "lightning_step",
    "collapse_metrics",
)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a few minutes)")
    parser.add_argument("--tiny", action="store_true", help="minimal sizes (a smoke test)")
    parser.add_argument("--out", default=None, help="JSON file to write")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated subset of {list(BENCHMARKS)}"
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="torch device of the torch benchmarks (auto: cuda if available, else cpu)",
    )
    parser.add_argument(
        "--markdown", default=None, metavar="JSON", help="print a results file as a table"
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="full", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(json.loads(Path(args.markdown).read_text())))
        return {}
    try:
        torch_device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    use_torch_device(torch_device)
    if args.worker:  # one fresh process of a benchmark that asks for them
        print(json.dumps(importlib.import_module(args.worker).worker(args.mode)))
        return {}
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"--only: unknown {unknown}; choose from {list(BENCHMARKS)}")
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    device, backend = describe_device()
    torch_name = describe_torch_device(torch_device)
    print(
        f"device: {device}   backend: {backend}   torch device: {torch_name}   mode: {mode}",
        flush=True,
    )
    results: dict[str, Any] = {}
    for name in names:
        start = time.perf_counter()
        results.update(importlib.import_module(name).run(mode))
        print(f"  {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    print(f"\n{'benchmark':42s} {'ratio':>8s}  details")
    for name, row in results.items():
        details = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in row.items()
            if k not in ("ratio", "baseline")
        )
        print(f"{name:42s} {row['ratio']:8.3f}  {details}")
    report = {
        "device": device,
        "backend": backend,
        "torch_device": torch_device,
        "torch_device_name": torch_name,
        "versions": versions(),
        "mode": mode,
        "command": "python benchmarks/run.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "results": results,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main()

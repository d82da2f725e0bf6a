"""A torch.compile'd train step with the host objects inside, as the documented loop uses
them (module-level ``annealer`` and ``controller`` read by the compiled loss), against the
same step with a constant beta, on the runner's torch device. Target: ratio <= 1.05, and no
recompilation while beta changes (``recompiles_while_timed`` must be 0).

Each kind is compiled twice: with the default mode, and with ``mode="reduce-overhead"``
(``reduce_overhead/<kind>``, against the constant beta in that mode). On CUDA that mode
replays the step as CUDA graphs, and inductor declines them for a graph that reads a CPU
tensor, as beta's 0-d mirror is: ``cudagraph_skips`` counts the compiled graphs (forward
and backward) it declined, with inductor's reasons in ``cudagraph_skip_reasons``. On the
CPU the mode is accepted but makes no CUDA graphs (every graph counts as a skip)."""

from __future__ import annotations

import logging
import time
from typing import Any

from _harness import (
    in_fresh_processes,
    interleaved,
    median,
    paired_ratio,
    synchronize,
    torch_device,
)

NAME = "torch_compile_step"
SIZES = {
    "full": {"processes": 3, "steps": 20, "repeats": 21, "backend": "inductor"},
    "quick": {"processes": 2, "steps": 10, "repeats": 7, "backend": "inductor"},
    "tiny": {"processes": 1, "steps": 2, "repeats": 2, "backend": "aot_eager"},
}
KINDS = ("constant", "constant_copy", "annealer", "pi_controller")
REDUCE_OVERHEAD = "reduce_overhead/"  # a case's name prefix: compiled in that mode
CASES = (*KINDS, *(REDUCE_OVERHEAD + kind for kind in ("constant", "annealer", "pi_controller")))
SKIP_LOGGER = "torch._inductor.cudagraph_utils.__cudagraphs"  # where inductor says why


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().splitlines()[0][:300])


def worker(mode: str) -> dict[str, Any]:
    import torch
    from torch._dynamo.utils import counters

    from kl_schedules import Annealer
    from kl_schedules.control import PIController
    from kl_schedules.torch import VAELoss

    size, device = SIZES[mode], torch_device()
    # every case compiles the same code object (loss_fn) about twice, past dynamo's default
    # limit of 8 compilations per code object
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    annealer = Annealer(total_steps=1000, shape="cosine", cyclical=True)
    controller = PIController(target_kl=5.0, k_i=1e-3)
    criterion = VAELoss(from_logits=True)
    x = (torch.rand(128, 784, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    x = x.to(device)
    skip_log = _Messages()
    logging.getLogger(SKIP_LOGGER).addHandler(skip_log)

    def make_step(case):
        kind = case.removeprefix(REDUCE_OVERHEAD)
        torch.manual_seed(0)  # every kind starts from the same model
        encoder = torch.nn.Sequential(
            torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64)
        ).to(device)
        decoder = torch.nn.Sequential(
            torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Linear(256, 784)
        ).to(device)
        params = [*encoder.parameters(), *decoder.parameters()]
        optimizer = torch.optim.Adam(params, lr=1e-3)

        def loss_fn(x):
            mu, logvar = encoder(x).chunk(2, dim=-1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            recon, kld = criterion(decoder(z), x, mu, logvar)
            if kind == "annealer":
                return recon + annealer(kld)
            if kind == "pi_controller":
                return recon + controller.beta * kld
            return recon + 1.0 * kld

        options: dict[str, Any] = {"backend": size["backend"], "fullgraph": True}
        if case.startswith(REDUCE_OVERHEAD) and size["backend"] == "inductor":
            options["mode"] = "reduce-overhead"  # (other backends ignore a mode)
        compiled = torch.compile(loss_fn, **options)

        def step(i):
            loss = compiled(x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            annealer.step()  # every kind pays the same host calls; only the loss differs
            controller.update(4.0 + 0.1 * (i % 7))

        return step

    steps = {case: make_step(case) for case in CASES}
    skips, reasons = {}, {}
    for case, step in steps.items():  # compile (twice: the first beta change is seen here;
        before = counters["inductor"]["cudagraph_skips"]  # CUDA graphs record on a 3rd call)
        skip_log.messages.clear()
        for i in range(3):
            step(i)
        synchronize(device)
        skips[case] = float(counters["inductor"]["cudagraph_skips"] - before)
        reasons[case] = sorted(set(skip_log.messages))
    counters.clear()

    def timer(step):
        def run_once():
            synchronize(device)
            start = time.perf_counter()
            for i in range(size["steps"]):
                step(i)
            synchronize(device)
            return (time.perf_counter() - start) / size["steps"]

        return run_once

    samples: dict[str, Any] = interleaved({k: timer(s) for k, s in steps.items()}, size["repeats"])
    samples["recompiles"] = [float(counters["stats"]["unique_graphs"])]
    samples["cudagraph_skips"] = skips
    samples["cudagraph_skip_reasons"] = reasons
    return samples


def _baseline(case: str) -> str:
    return REDUCE_OVERHEAD + "constant" if case.startswith(REDUCE_OVERHEAD) else "constant"


def run(mode: str) -> dict[str, Any]:
    per_process = in_fresh_processes(NAME, mode, SIZES[mode]["processes"])
    ratios = {
        case: [paired_ratio(p, case, _baseline(case)) for p in per_process]
        for case in CASES
        if case != _baseline(case)
    }
    recompiles = int(sum(p["recompiles"][0] for p in per_process))
    backend, device = SIZES[mode]["backend"], torch_device()
    results = {}
    for case in CASES:
        if case in ("constant", "constant_copy") or case == _baseline(case):
            continue
        compile_mode = "reduce-overhead" if case.startswith(REDUCE_OVERHEAD) else "default"
        if backend != "inductor":
            compile_mode = "default (the tiny size's aot_eager backend takes no mode)"
        row = {
            "ratio": median(ratios[case]),
            "baseline": f"same compiled step ({backend}, mode {compile_mode}) with constant beta",
            "aa_control_ratio": median(ratios["constant_copy"]),
            "per_process_ratios": [round(r, 4) for r in ratios[case]],
            "us_per_step": median([median(p[case]) for p in per_process]) * 1e6,
            "baseline_us_per_step": median([median(p[_baseline(case)]) for p in per_process]) * 1e6,
            "recompiles_while_timed": recompiles,
            "device": device,
            "target": "<= 1.05, 0 recompiles",
        }
        if case.startswith(REDUCE_OVERHEAD):
            skips = [p["cudagraph_skips"][case] for p in per_process]
            row["cudagraph_skips"] = int(max(skips))
            row["baseline_cudagraph_skips"] = int(
                max(p["cudagraph_skips"][_baseline(case)] for p in per_process)
            )
            row["cudagraphs_used"] = device == "cuda" and backend == "inductor" and max(skips) == 0
            row["cudagraph_skip_reasons"] = sorted(
                {r for p in per_process for r in p["cudagraph_skip_reasons"][case]}
            )
            row["vs_default_mode_ratio"] = median(
                [paired_ratio(p, case, case.removeprefix(REDUCE_OVERHEAD)) for p in per_process]
            )
        results[f"{NAME}/{case}"] = row
    return results

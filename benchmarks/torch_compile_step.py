"""A torch.compile'd train step with the host objects inside, as the documented loop uses
them (module-level ``annealer`` and ``controller`` read by the compiled loss), against the
same step with a constant beta. Target: ratio <= 1.05, and no recompilation while beta
changes (``recompiles_while_timed`` must be 0)."""

from __future__ import annotations

import time
from typing import Any

from _harness import in_fresh_processes, interleaved, median, paired_ratio

NAME = "torch_compile_step"
SIZES = {
    "full": {"processes": 3, "steps": 20, "repeats": 21, "backend": "inductor"},
    "quick": {"processes": 2, "steps": 10, "repeats": 7, "backend": "inductor"},
    "tiny": {"processes": 1, "steps": 2, "repeats": 2, "backend": "aot_eager"},
}
KINDS = ("constant", "constant_copy", "annealer", "pi_controller")


def worker(mode: str) -> dict[str, Any]:
    import torch

    from kl_schedules import Annealer
    from kl_schedules.control import PIController
    from kl_schedules.torch import VAELoss

    size = SIZES[mode]
    annealer = Annealer(total_steps=1000, shape="cosine", cyclical=True)
    controller = PIController(target_kl=5.0, k_i=1e-3)
    criterion = VAELoss(from_logits=True)
    x = (torch.rand(128, 784, generator=torch.Generator().manual_seed(1)) < 0.3).float()

    def make_step(kind):
        torch.manual_seed(0)  # every kind starts from the same model
        encoder = torch.nn.Sequential(
            torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64)
        )
        decoder = torch.nn.Sequential(
            torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Linear(256, 784)
        )
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

        compiled = torch.compile(loss_fn, backend=size["backend"], fullgraph=True)

        def step(i):
            loss = compiled(x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            annealer.step()  # every kind pays the same host calls; only the loss differs
            controller.update(4.0 + 0.1 * (i % 7))

        return step

    steps = {kind: make_step(kind) for kind in KINDS}
    for step in steps.values():  # compile (twice: the first beta change is seen here)
        step(0)
        step(1)
    torch._dynamo.utils.counters.clear()

    def timer(step):
        def run_once():
            start = time.perf_counter()
            for i in range(size["steps"]):
                step(i)
            return (time.perf_counter() - start) / size["steps"]

        return run_once

    samples = interleaved({k: timer(s) for k, s in steps.items()}, size["repeats"])
    samples["recompiles"] = [float(torch._dynamo.utils.counters["stats"]["unique_graphs"])]
    return samples


def run(mode: str) -> dict[str, Any]:
    per_process = in_fresh_processes(NAME, mode, SIZES[mode]["processes"])
    ratios = {k: [paired_ratio(p, k, "constant") for p in per_process] for k in KINDS[1:]}
    base = median([median(p["constant"]) for p in per_process])
    recompiles = int(sum(p["recompiles"][0] for p in per_process))
    return {
        f"{NAME}/{kind}": {
            "ratio": median(ratios[kind]),
            "baseline": f"same compiled step ({SIZES[mode]['backend']}) with constant beta",
            "aa_control_ratio": median(ratios["constant_copy"]),
            "per_process_ratios": [round(r, 4) for r in ratios[kind]],
            "us_per_step": median([median(p[kind]) for p in per_process]) * 1e6,
            "baseline_us_per_step": base * 1e6,
            "recompiles_while_timed": recompiles,
            "target": "<= 1.05, 0 recompiles",
        }
        for kind in KINDS[2:]
    }

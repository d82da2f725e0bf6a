"""A PyTorch Lightning training step with KLAnnealingCallback setting beta (a registered
buffer read by the loss) every step, against the same step with a constant beta buffer and
no callback. Target: ratio <= 1.02; with the module compiled (``torch.compile(module)``,
its ``forward`` holds the loss), no recompilation while beta changes (``recompiles`` 0).

Each round fits every kind for ``steps`` optimizer steps with a fresh ``Trainer`` (the same
module, so it compiles once), in a shuffled order; a kind's time is the mean step time from
its third batch on (a callback records ``perf_counter`` at every batch start, the same for
every kind), so the trainer's set-up is not counted. ``constant_copy`` is an A/A control.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from _harness import in_fresh_processes, interleaved, median, paired_ratio

NAME = "lightning_step"
SIZES = {
    "full": {"processes": 3, "steps": 40, "repeats": 15, "backend": "inductor"},
    "quick": {"processes": 2, "steps": 20, "repeats": 7, "backend": "aot_eager"},
    "tiny": {"processes": 1, "steps": 5, "repeats": 2, "backend": "aot_eager"},
}
KINDS = ("constant", "constant_copy", "callback", "callback_pi")
SKIP = 2  # batches not timed in each fit


def worker(mode: str) -> dict[str, Any]:
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F
    from torch import nn

    from kl_schedules import monotonic_schedule
    from kl_schedules.control import PIController
    from kl_schedules.lightning import KLAnnealingCallback

    warnings.filterwarnings("ignore")  # Lightning's advice on workers and the like
    size = SIZES[mode]
    steps = size["steps"]

    class VAE(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)  # every kind starts from the same model
            self.encoder = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64))
            self.decoder = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 784))
            self.register_buffer("beta", torch.tensor(0.5))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mu, logvar = self.encoder(x).chunk(2, dim=-1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            recon = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="sum")
            kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1).mean()
            return recon / len(x) + self.beta * kl, kl

        def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
            loss, kl = self(batch[0])
            return {"loss": loss, "kl": kl}

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class Clock(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_batch_start(self, *args: Any) -> None:
            self.times.append(time.perf_counter())

        def on_train_end(self, *args: Any) -> None:
            self.times.append(time.perf_counter())

    x = (torch.rand(128 * steps, 784, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=128)

    def make(kind: str) -> Any:
        module = VAE()
        model = torch.compile(module, backend=size["backend"])

        def fit() -> float:
            clock = Clock()
            callbacks: list[pl.Callback] = [clock]
            if kind == "callback":  # beta changes every step (a warm-up as long as the fit)
                callbacks.append(KLAnnealingCallback(monotonic_schedule(steps + 1)))
            elif kind == "callback_pi":
                callbacks.append(KLAnnealingCallback(PIController(target_kl=5.0, k_i=1e-3)))
            trainer = pl.Trainer(
                max_steps=steps,
                callbacks=callbacks,
                accelerator="cpu",
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
            trainer.fit(model, data)
            times = clock.times[SKIP:]
            return (times[-1] - times[0]) / (len(times) - 1)

        return fit

    fits = {kind: make(kind) for kind in KINDS}
    for fit in fits.values():  # compile, and see beta change once
        fit()
    counters = torch._dynamo.utils.counters
    graphs_before = counters["stats"]["unique_graphs"]
    recompiles_before = sum(counters["recompiles"].values())
    samples = interleaved(fits, size["repeats"])
    samples["recompiles"] = [
        float(
            counters["stats"]["unique_graphs"]
            - graphs_before
            + sum(counters["recompiles"].values())
            - recompiles_before
        )
    ]
    samples["graphs"] = [float(graphs_before)]
    return samples


def run(mode: str) -> dict[str, Any]:
    per_process = in_fresh_processes(NAME, mode, SIZES[mode]["processes"])
    ratios = {k: [paired_ratio(p, k, "constant") for p in per_process] for k in KINDS[1:]}
    base = median([median(p["constant"]) for p in per_process])
    recompiles = int(sum(p["recompiles"][0] for p in per_process))
    return {
        f"{NAME}/{kind}": {
            "ratio": median(ratios[kind]),
            "baseline": (
                f"same Lightning step, module compiled ({SIZES[mode]['backend']}), constant "
                f"beta buffer, no callback"
            ),
            "aa_control_ratio": median(ratios["constant_copy"]),
            "per_process_ratios": [round(r, 4) for r in ratios[kind]],
            "us_per_step": median([median(p[kind]) for p in per_process]) * 1e6,
            "baseline_us_per_step": base * 1e6,
            "recompiles_while_timed": recompiles,
            "graphs_compiled": int(per_process[0]["graphs"][0]),
            "target": "<= 1.02, 0 recompiles",
        }
        for kind in KINDS[2:]
    }

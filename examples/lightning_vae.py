"""A PyTorch Lightning VAE on scikit-learn's digits, beta driven by KLAnnealingCallback.

The module holds beta as a registered buffer and reads it in its loss; the callback sets it
before every batch from a linear warm-up over the first two thirds of the optimizer steps
(or, with ``--pi``, from a PI controller fed the batch KL that ``training_step`` returns).
The run is interrupted at its midpoint and resumed from the checkpoint by a fresh module,
callback and trainer: the warm-up continues where it was (the callback's state is in the
checkpoint), which the script checks against the betas of the uninterrupted run.

    python examples/lightning_vae.py            # 300 optimizer steps, well under a minute
    python examples/lightning_vae.py --pi       # PI control of the KL towards 4 nats
    python examples/lightning_vae.py --quick    # 30 steps (what the tests run)
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from kl_schedules import monotonic_schedule
from kl_schedules.control import PIController
from kl_schedules.lightning import KLAnnealingCallback


class DigitsVAE(pl.LightningModule):
    """A small MLP VAE on 8x8 digits (64 pixels in [0, 1]), Bernoulli likelihood."""

    def __init__(self, latent: int = 8, hidden: int = 128) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent)
        )
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 64))
        self.register_buffer("beta", torch.tensor(0.0))  # set by the callback every batch
        self.history: list[dict[str, float]] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, Any]:
        mu, logvar = self.encoder(batch).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        logits = self.decoder(z)
        recon = F.binary_cross_entropy_with_logits(logits, batch, reduction="sum") / len(batch)
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1).mean()
        self.history.append(
            {"step": self.global_step, "beta": float(self.beta)}
            | {"recon": float(recon.detach()), "kl": float(kl.detach())}
        )
        return {"loss": recon + self.beta * kl, "kl": kl, "mu": mu, "logvar": logvar}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def fit(steps: int, pi: bool, folder: Path, resume: Path | None = None) -> list[dict[str, float]]:
    """Trains a fresh module to ``steps`` optimizer steps, from ``resume`` (a checkpoint) if
    given, else from scratch, saving a checkpoint at the midpoint; returns its history."""
    torch.manual_seed(0)
    data = torch.tensor(load_digits().data / 16.0, dtype=torch.float32)
    loader = torch.utils.data.DataLoader(data, batch_size=128, shuffle=True)
    schedule = (
        PIController(target_kl=4.0, k_p=0.05, k_i=0.005)
        if pi
        else monotonic_schedule(2 * steps // 3)
    )
    save = pl.callbacks.ModelCheckpoint(folder, every_n_train_steps=steps // 2, save_top_k=-1)
    trainer = pl.Trainer(
        max_steps=steps,
        callbacks=[KLAnnealingCallback(schedule), save],
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=folder,
    )
    module = DigitsVAE()
    trainer.fit(module, loader, ckpt_path=resume)
    return module.history


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="30 optimizer steps")
    parser.add_argument("--pi", action="store_true", help="a PI controller instead of a warm-up")
    args = parser.parse_args(argv)
    steps = 30 if args.quick else args.steps
    middle = steps // 2
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch.*")
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # the resume saves there too

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        full = fit(steps, args.pi, Path(folder))
        checkpoint = next(Path(folder).glob(f"*step={middle}.ckpt"))
        resumed = fit(steps, args.pi, Path(folder), resume=checkpoint)
    seconds = time.perf_counter() - start

    every = max(1, steps // 10)
    print(f"{'step':>5} {'beta':>7} {'recon':>8} {'kl':>7}")
    for row in full[::every] + full[-1:]:
        print(f"{row['step']:5d} {row['beta']:7.3f} {row['recon']:8.2f} {row['kl']:7.2f}")
    # A mid-epoch resume replays a different shuffle, so compare the betas of the first step
    # after the resume (for a schedule, all of them: they depend on the step only).
    after = [row["beta"] for row in full if row["step"] >= middle]
    again = [row["beta"] for row in resumed]
    same = again[0] == after[0] if args.pi else again == after
    print(
        f"resumed at step {resumed[0]['step']} with beta {again[0]:.3f} (uninterrupted run: "
        f"{after[0]:.3f}); {'same betas' if same else 'DIFFERENT betas'} after the resume; "
        f"{seconds:.1f} s for both runs"
    )
    return {"full": full, "resumed": resumed, "same": same}


if __name__ == "__main__":
    main()

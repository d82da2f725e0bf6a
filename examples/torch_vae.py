"""The documented PyTorch training loop with kl_schedules' Annealer, on scikit-learn digits.

One ``annealer.step()`` per epoch; cyclical until epoch 30, plain (climb to full and hold)
until 70, cyclical again after (the documented toggle example). Prints recon / KL / beta
per epoch.

    python examples/torch_vae.py            # 100 epochs, well under a minute on CPU
    python examples/torch_vae.py --quick    # 12 epochs (what the tests run)
"""

from __future__ import annotations

import argparse
import time

import torch
from sklearn.datasets import load_digits
from torch import nn

from kl_schedules.torch import Annealer, VAELoss


class VAE(nn.Module):
    def __init__(self, features: int = 64, hidden: int = 128, latent: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
        self.to_mu, self.to_logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, features), nn.Sigmoid()
        )

    def forward(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(x0)
        mu, logvar = self.to_mu(h), self.to_logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="12 epochs, toggles at 4 and 8")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs, off_at, on_at = (12, 4, 8) if args.quick else (args.epochs, 30, 70)

    torch.manual_seed(args.seed)
    data = torch.tensor(load_digits().data / 16.0, dtype=torch.float32)
    loader = torch.utils.data.DataLoader(data, batch_size=128, shuffle=True)
    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = VAELoss()  # recon and KL both summed per sample, mean over the batch
    annealer = Annealer(total_steps=10, shape="cosine", baseline=0.0, cyclical=True)

    history, start = [], time.perf_counter()
    for epoch in range(epochs):
        if epoch == off_at:
            annealer.set_cyclical(False)  # plain: climb to full and hold
        if epoch == on_at:
            annealer.set_cyclical(True)  # cyclical again
        totals = {"recon": 0.0, "kl": 0.0}
        for x0 in loader:
            x, mu, logvar = model(x0)
            recon, kld = criterion(x, x0, mu, logvar)
            loss = recon + annealer(kld)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            totals["recon"] += recon.item() * len(x0) / len(data)
            totals["kl"] += kld.item() * len(x0) / len(data)
        row = {"epoch": epoch, "beta": annealer.beta, **totals}
        history.append(row)
        print(
            f"epoch {epoch:3d}  beta {row['beta']:.3f}  recon {row['recon']:7.2f}  "
            f"KL {row['kl']:6.2f}  cyclical={annealer.cyclical}",
            flush=True,
        )
        annealer.step()  # one step per epoch, as documented
    print(f"done in {time.perf_counter() - start:.1f} s; final state {annealer.state_dict()}")
    return history


if __name__ == "__main__":
    main()

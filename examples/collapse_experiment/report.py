"""Reporting: the summary table and the figures (training curves; digit images per arm)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .model import generate

COLUMNS = (  # (run key, header, decimals)
    ("kl", "KL", 2),
    ("mutual_info", "MI", 2),
    ("active_units", "AU", 1),
    ("probe_accuracy", "probe acc.", 2),
    ("train_recon", "train recon", 2),
    ("recon", "held-out recon", 2),
    ("elbo", "ELBO", 2),
    ("nll_iw", "NLL (IW)", 2),
    ("kl_change_last_quarter", "KL change, last 25%", 2),
    ("elbo_change_last_quarter", "ELBO change, last 25%", 2),
)


def collapse_cell(group: list[dict]) -> str:
    """Whether and when the collapse monitor fired, over the seeds of one arm: e.g.
    ``"3/3 (1400, 1600, 1200)"`` (steps, in seed order; ``-`` for a seed it never flagged)
    or ``"0/3"``."""
    steps = [r.get("collapse_step") for r in group]
    fired = sum(s is not None for s in steps)
    if not fired:
        return f"0/{len(steps)}"
    return f"{fired}/{len(steps)} (" + ", ".join("-" if s is None else str(s) for s in steps) + ")"


def summary_table(runs: list[dict]) -> str:
    """Markdown table: mean ± std over seeds (sample std) per data set and arm, and the
    collapse monitor's verdict (:func:`collapse_cell`)."""
    header = ["data", "arm", "seeds", *(title for _, title, _ in COLUMNS), "collapse flagged at"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, schedule in dict.fromkeys((r["dataset"], r["schedule"]) for r in runs):
        group = [r for r in runs if (r["dataset"], r["schedule"]) == (dataset, schedule)]
        cells = [dataset, schedule, ",".join(str(r["seed"]) for r in group)]
        for key, _, decimals in COLUMNS:
            values = np.array([r[key] for r in group], dtype=float)
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.{decimals}f} ± {std:.{decimals}f}")
        cells.append(collapse_cell(group))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(runs: list[dict], path: Path, schedules) -> None:
    """beta and KL (train-batch averages) and the held-out -ELBO over the whole of
    training, every seed."""
    plt = _pyplot()
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    fig, axes = plt.subplots(3, len(datasets), figsize=(5.5 * len(datasets), 8), squeeze=False)
    colours = dict(zip(schedules, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for col, dataset in enumerate(datasets):
        first_seed = next(r["seed"] for r in runs if r["dataset"] == dataset)
        for run in (r for r in runs if r["dataset"] == dataset):
            curve = run["curve"]
            label = run["schedule"] if run["seed"] == first_seed else None
            neg_elbo = -np.asarray(curve["heldout_elbo"])
            for row, values in enumerate((curve["beta"], curve["kl"], neg_elbo)):
                axes[row, col].plot(
                    curve["step"], values, color=colours[run["schedule"]], alpha=0.7, label=label
                )
        axes[0, col].set_title(f"{dataset}: every arm and seed")
        names = ("beta", "train-batch KL (nats)", "held-out -ELBO (nats)")
        for row, name in enumerate(names):
            axes[row, col].set_ylabel(name)
        axes[1, col].set_yscale("symlog", linthresh=0.1)
        tails = [  # skip the first tenth of training, which would dwarf the rest
            -np.asarray(r["curve"]["heldout_elbo"][len(r["curve"]["step"]) // 10 :])
            for r in runs
            if r["dataset"] == dataset
        ]
        low, high = min(t.min() for t in tails), max(t.max() for t in tails)
        axes[2, col].set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        axes[2, col].set_xlabel("step")
        axes[0, col].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_digits(model, params, names: list[str], data, seed: int, path: Path) -> None:
    """One held-out image of each digit; per arm, its reconstruction (z = E[z|x], the most
    likely pixel at each step) and samples (z ~ N(0, I), pixels drawn in turn)."""
    plt = _pyplot()
    pick = [int(np.flatnonzero(data.test_labels == d)[0]) for d in range(10)]
    originals = jnp.asarray(data.test[pick])
    length = originals.shape[1]
    rows = [("held-out", np.asarray(originals))]
    key = jax.random.key(20_000 + seed)
    z_prior = jax.random.normal(key, (10, model.latent))
    for arm, name in enumerate(names):
        arm_params = jax.tree.map(lambda p, arm=arm: p[arm], params)
        mu, _ = model.apply({"params": arm_params}, originals, method=type(model).encode)
        recon = generate(model, arm_params, mu, length, key, greedy=True)
        samples = generate(model, arm_params, z_prior, length, key, greedy=False)
        rows += [(f"{name}\nrecon.", np.asarray(recon)), (f"{name}\nsamples", np.asarray(samples))]
    fig, axes = plt.subplots(len(rows), 1, figsize=(6, 0.75 * len(rows)))
    for ax, (title, images) in zip(axes, rows, strict=True):
        tiles = np.pad(images.reshape(-1, 8, 8), ((0, 0), (1, 1), (1, 1)), constant_values=0.5)
        ax.imshow(np.hstack(list(tiles)), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"digits, seed {seed}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

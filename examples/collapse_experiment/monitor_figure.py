"""The guide's picture: one monitored run of the collapse experiment, the collapse monitor's
warning step marked.

    python examples/collapse_experiment/monitor_figure.py \\
        docs/posterior_collapse/monitor/results.json --schedule monotonic --seed 0 \\
        --out docs/guide/collapse_monitor.png

Reads a ``results.json`` written by ``examples/posterior_collapse.py`` (any run that has the
monitor's curves) and draws, over training: beta, the held-out KL that the monitor saw (with
its threshold), the active units and the mutual information; a vertical line marks the step
at which :class:`kl_schedules.diagnostics.CollapseMonitor` warned (``collapse_step``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KL_THRESHOLD = 0.05  # CollapseConfig's default, which the experiment uses


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a results.json of examples/posterior_collapse.py")
    parser.add_argument("--dataset", default="topics")
    parser.add_argument("--schedule", default="monotonic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/guide/collapse_monitor.png")
    args = parser.parse_args(argv)
    runs = json.loads(Path(args.results).read_text())["runs"]
    matches = [
        r
        for r in runs
        if (r["dataset"], r["schedule"], r["seed"]) == (args.dataset, args.schedule, args.seed)
    ]
    if not matches:
        parser.error(f"no run of {args.schedule} on {args.dataset}, seed {args.seed}")
    run = matches[0]
    curve = run["curve"]
    if "heldout_kl" not in curve:
        parser.error("this results.json has no monitor curves (rerun the experiment)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = curve["step"]
    fig, axes = plt.subplots(4, 1, figsize=(7, 7.5), sharex=True)
    axes[0].plot(steps, curve["beta"], color="C0")
    axes[0].set_ylabel("beta")
    axes[1].plot(steps, curve["heldout_kl"], color="C1", label="held-out KL (monitor)")
    axes[1].axhline(KL_THRESHOLD, color="grey", ls=":", label=f"threshold {KL_THRESHOLD} nats")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("KL (nats)")
    axes[1].legend(fontsize=8, loc="upper right")
    axes[2].plot(steps, curve["heldout_active_units"], color="C2", drawstyle="steps-post")
    axes[2].set_ylabel("active units")
    axes[3].plot(steps, curve["heldout_mutual_info"], color="C3")
    axes[3].set_ylabel("mutual info (nats)")
    axes[3].set_xlabel("training step")
    flagged = run.get("collapse_step")
    for ax in axes:
        if flagged is not None:
            ax.axvline(flagged, color="red", lw=1.5)
    if flagged is not None:
        left = flagged > (steps[0] + steps[-1]) / 2  # the label on the side with room
        axes[0].annotate(
            f"PosteriorCollapseWarning at step {flagged}",
            (flagged, 0.5),
            xycoords=("data", "axes fraction"),
            xytext=(-8 if left else 8, 0),
            textcoords="offset points",
            ha="right" if left else "left",
            color="red",
            fontsize=9,
        )
    axes[0].set_title(
        f"{args.dataset}, {args.schedule} arm, seed {args.seed}: "
        "CollapseMonitor on 500 held-out sequences",
        fontsize=10,
    )
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()

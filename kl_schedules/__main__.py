"""Command line: ``python -m kl_schedules {plot,values}`` (also ``kl-schedules``).

Examples::

    kl-schedules values --kind cyclical --period 10 --steps 12
    kl-schedules plot --kind cyclical --shape linear,cosine,logistic --period 250 --steps 1000 \\
        --out cyclical.png
    kl-schedules plot --kind annealer --total-steps 10 --cyclical --toggle 30:off,70:on \\
        --steps 100 --out toggle.png
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from kl_schedules._annealer import Annealer
from kl_schedules._schedules import (
    Schedule,
    constant_schedule,
    cyclical_schedule,
    monotonic_schedule,
    schedule_values_from,
)
from kl_schedules._shapes import SHAPE_NAMES

KINDS = ("monotonic", "cyclical", "constant", "annealer")


class CommandLineError(Exception):
    """A bad option: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _shapes(text: str) -> list[str]:
    shapes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPE_NAMES]
    if not shapes or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown shape(s) {unknown or text!r}; choose from {list(SHAPE_NAMES)}"
        )
    return shapes


def _toggles(text: str) -> dict[int, bool]:
    toggles = {}
    for item in filter(None, text.split(",")):
        step, _, flag = item.partition(":")
        if not step.strip().isdigit() or flag.strip() not in ("on", "off"):
            raise argparse.ArgumentTypeError(f"expected STEP:on|off items, got {item!r}")
        toggles[int(step)] = flag.strip() == "on"
    return toggles


def _add_schedule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind", choices=KINDS, default="monotonic", help="schedule family (default monotonic)"
    )
    parser.add_argument(
        "--shape",
        type=_shapes,
        default=["linear"],
        help=f"ramp shape(s), comma-separated, from {list(SHAPE_NAMES)}; "
        "one line each (default linear)",
    )
    parser.add_argument(
        "--steps", type=int, default=1000, help="number of steps to evaluate, from 0 (default 1000)"
    )
    parser.add_argument(
        "--total-steps",
        type=int,
        default=None,
        help="ramp length of monotonic / T of annealer (default: --steps)",
    )
    parser.add_argument(
        "--period",
        type=float,
        default=None,
        help="cyclical: steps per cycle, may be fractional (default steps/4)",
    )
    parser.add_argument(
        "--ratio",
        type=float,
        default=0.5,
        help="cyclical: fraction of a cycle spent ramping (default 0.5)",
    )
    parser.add_argument(
        "--start", type=float, default=0.0, help="beta at the start of the ramp (default 0)"
    )
    parser.add_argument("--end", type=float, default=1.0, help="beta at its end (default 1)")
    parser.add_argument("--value", type=float, default=1.0, help="constant: beta (default 1)")
    parser.add_argument(
        "--delay", type=int, default=0, help="monotonic: steps held at --start first (default 0)"
    )
    parser.add_argument(
        "--steepness",
        type=float,
        default=12.0,
        help="logistic: steepness in ramp units (default 12)",
    )
    parser.add_argument(
        "--baseline", type=float, default=0.0, help="annealer: weight at step 0 (default 0)"
    )
    parser.add_argument("--cyclical", action="store_true", help="annealer: start cyclical")
    parser.add_argument(
        "--toggle",
        type=_toggles,
        default={},
        help="annealer: STEP:on|off,... switches cyclical mode before STEP",
    )


def _series(args: argparse.Namespace) -> list[tuple[str, np.ndarray]]:
    """(label, beta for steps 0 .. steps-1) for every requested shape."""
    if args.steps < 1:
        raise CommandLineError(f"--steps must be >= 1, got {args.steps}")
    total = args.total_steps if args.total_steps is not None else args.steps
    series = []
    for shape in args.shape if args.kind != "constant" else ["constant"]:
        try:
            if args.kind == "annealer":
                values = _annealer_values(args, total, shape)
            else:
                schedule: Schedule
                if args.kind == "constant":
                    schedule = constant_schedule(args.value)
                elif args.kind == "monotonic":
                    schedule = monotonic_schedule(
                        total, shape, args.start, args.end, args.delay, args.steepness
                    )
                else:
                    period = args.period if args.period is not None else args.steps / 4
                    schedule = cyclical_schedule(
                        period, args.ratio, shape, args.start, args.end, args.steepness
                    )
                values = schedule_values_from(schedule, 0, args.steps)
        except (ValueError, TypeError) as error:
            option = str(error).split(" ")[0].replace("_", "-")
            raise CommandLineError(f"--{option}: {error}") from None
        series.append((shape, values))
    return series


def _annealer_values(args: argparse.Namespace, total: int, shape: str) -> np.ndarray:
    annealer = Annealer(total, shape, args.baseline, cyclical=args.cyclical)
    values = np.empty(args.steps)
    for t in range(args.steps):
        if t in args.toggle:
            annealer.set_cyclical(args.toggle[t])
        values[t] = annealer.beta
        annealer.step()
    return values


def _plot(args: argparse.Namespace) -> None:
    series = _series(args)
    if args.csv:
        with open(args.out, "w", newline="") as handle:
            _write_csv(handle, series)
        print(f"wrote {args.out}")
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CommandLineError(
            "plot needs matplotlib (pip install 'kl_schedules[plot]'), or use --csv"
        ) from None
    fig, ax = plt.subplots(figsize=(7, 3))
    for label, values in series:
        ax.plot(np.arange(len(values)), values, label=label)
    for step, flag in sorted(args.toggle.items()) if args.kind == "annealer" else []:
        ax.axvline(step, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            f"cyclical {'on' if flag else 'off'}",
            (step, 0.5),
            rotation=90,
            fontsize=8,
            ha="right",
            color="grey",
        )
    ax.set_title(args.title or f"{args.kind} schedule")
    ax.set_xlabel("step")
    ax.set_ylabel("beta")
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}")


def _write_csv(handle: Any, series: list[tuple[str, np.ndarray]]) -> None:
    writer = csv.writer(handle)
    writer.writerow(["step", *(label for label, _ in series)])
    for t in range(len(series[0][1])):
        writer.writerow([t, *(f"{values[t]:.9g}" for _, values in series)])


def _values(args: argparse.Namespace) -> None:
    _write_csv(sys.stdout, _series(args))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kl-schedules",
        description="Inspect KL-annealing (beta) schedules.",
        epilog=__doc__.split("Examples::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    plot = commands.add_parser("plot", help="draw a schedule to PNG (or CSV with --csv)")
    _add_schedule_options(plot)
    plot.add_argument("--out", default="schedule.png", help="output file (default schedule.png)")
    plot.add_argument("--csv", action="store_true", help="write CSV (step, beta...) instead")
    plot.add_argument("--title", default=None, help="figure title")
    plot.set_defaults(run=_plot)
    values = commands.add_parser("values", help="print step,beta as CSV to stdout")
    _add_schedule_options(values)
    values.set_defaults(run=_values)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # bad syntax: argparse prints usage + one line, exit 2
    try:
        args.run(args)
    except CommandLineError as error:
        print(f"kl-schedules: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"kl-schedules: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m kl_schedules {plot,values}`` (also ``kl-schedules``).

Examples::

    kl-schedules values --kind cyclical --period 10 --steps 12
    kl-schedules plot --kind cyclical --shape linear,cosine,logistic --period 250 --steps 1000 \\
        --out cyclical.png
    kl-schedules plot --kind cyclical --period 250 --hold-start 0,0.25 --num-cycles none,3 \\
        --steps 1000 --out variants.png
    kl-schedules plot --kind annealer --total-steps 10 --cyclical --toggle 30:off,70:on \\
        --steps 100 --out toggle.png

Every schedule option takes a comma-separated list: one line (CSV column) per position,
lists of length 1 apply to every line. An option that the chosen --kind does not take is
an error. Every error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kl_schedules._annealer import Annealer
from kl_schedules._schedules import (
    constant_schedule,
    cyclical_schedule,
    monotonic_schedule,
    schedule_values_from,
)
from kl_schedules._validation import check_count
from kl_schedules._version import __version__


class CommandLineError(Exception):
    """A bad option: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(text: str) -> float:
    return float(text)


def _integer(text: str) -> int:
    return int(text)


def _optional_integer(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _toggles(text: str) -> dict[int, bool]:
    toggles = {}
    for item in filter(None, text.split(",")):
        step, _, flag = item.partition(":")
        if not step.strip().isdigit() or flag.strip() not in ("on", "off"):
            raise ValueError(f"expected STEP:on|off items, got {item!r}")
        toggles[int(step)] = flag.strip() == "on"
    return toggles


@dataclasses.dataclass(frozen=True)
class Option:
    """A schedule option: ``--flag`` sets the factory argument ``name``."""

    name: str
    parse: Callable[[str], Any]
    help: str
    listable: bool = True  # a comma-separated list gives one line per value

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS = {
    option.name: option
    for option in (
        Option("shape", str, "ramp shape: linear, cosine or logistic"),
        Option("total_steps", _integer, "ramp length (monotonic) or T (annealer); default --steps"),
        Option("period", _number, "cyclical: steps per cycle (> 1), may be fractional; steps/4"),
        Option("ratio", _number, "cyclical: fraction of a cycle spent ramping"),
        Option("hold_start", _number, "cyclical: fraction of a cycle held at --start first"),
        Option("num_cycles", _optional_integer, "cyclical: whole cycles, then hold --end; none"),
        Option("start", _number, "beta at the start of the ramp"),
        Option("end", _number, "beta at the end of the ramp"),
        Option("delay", _integer, "monotonic: steps held at --start first"),
        Option("steepness", _number, "logistic: steepness in ramp units"),
        Option("value", _number, "constant: beta"),
        Option("baseline", _number, "annealer: weight at step 0"),
        Option("toggle", _toggles, "annealer: STEP:on|off,... switches cyclical mode", False),
    )
}


def _annealer_values(
    num_steps: int,
    total_steps: int,
    shape: str = "linear",
    baseline: float = 0.0,
    cyclical: bool = False,
    toggle: dict[int, bool] | None = None,
) -> np.ndarray:
    """The documented Annealer's beta at each of ``num_steps`` steps, toggled on the way."""
    annealer = Annealer(total_steps, shape, baseline, cyclical=cyclical)
    values = np.empty(num_steps)
    for t in range(num_steps):
        if toggle and t in toggle:
            annealer.set_cyclical(toggle[t])
        values[t] = annealer.beta
        annealer.step()
    return values


@dataclasses.dataclass(frozen=True)
class Kind:
    """A ``--kind``: how to build its values, and the options it takes. Defaults are the
    library's own, except the run-dependent ones in ``defaults`` (functions of --steps)."""

    build: Callable[..., Any]
    options: tuple[str, ...]
    defaults: dict[str, Callable[[int], Any]] = dataclasses.field(default_factory=dict)
    is_schedule: bool = True


KINDS = {
    "monotonic": Kind(
        monotonic_schedule,
        ("total_steps", "shape", "start", "end", "delay", "steepness"),
        {"total_steps": lambda steps: steps},
    ),
    "cyclical": Kind(
        cyclical_schedule,
        ("period", "ratio", "shape", "start", "end", "steepness", "hold_start", "num_cycles"),
        {"period": lambda steps: max(steps / 4, 2)},
    ),
    "constant": Kind(constant_schedule, ("value",)),
    "annealer": Kind(
        _annealer_values,
        ("total_steps", "shape", "baseline", "cyclical", "toggle"),
        {"total_steps": lambda steps: steps},
        is_schedule=False,
    ),
}


def _default_shape(kind: Kind) -> Any:
    """The library's default ``shape`` of a kind's factory (None if it takes none)."""
    parameter = inspect.signature(kind.build).parameters.get("shape")
    return None if parameter is None else parameter.default


def _given(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The schedule options given on the command line, each parsed into a list."""
    given: dict[str, list[Any]] = {}
    for name, option in OPTIONS.items():
        if name not in vars(args):
            continue
        text = vars(args)[name]
        items = text.split(",") if option.listable else [text]
        try:
            given[name] = [option.parse(item.strip()) for item in items]
        except ValueError as error:
            raise CommandLineError(f"{option.flag}: cannot read {text!r} ({error})") from None
    if getattr(args, "cyclical", False):
        given["cyclical"] = [True]
    return given


def _series(args: argparse.Namespace) -> list[tuple[str, np.ndarray]]:
    """``(label, beta for steps 0 .. steps-1)`` for every line requested."""
    try:
        steps = check_count("steps", args.steps)
    except ValueError as error:
        raise CommandLineError(f"--steps: {error}") from None
    kind = KINDS[args.kind]
    given = _given(args)
    wrong = [name for name in given if name not in kind.options]
    if wrong:
        takes = ", ".join(OPTIONS[n].flag if n in OPTIONS else "--" + n for n in kind.options)
        flags = ", ".join(OPTIONS[n].flag if n in OPTIONS else "--" + n for n in wrong)
        raise CommandLineError(f"{flags} does not apply to --kind {args.kind} (it takes {takes})")
    if "steepness" in given and "logistic" not in given.get("shape", [_default_shape(kind)]):
        raise CommandLineError("--steepness applies only to --shape logistic")
    lines = max((len(v) for v in given.values()), default=1)
    for name, values in given.items():
        if len(values) not in (1, lines):
            raise CommandLineError(
                f"{OPTIONS[name].flag}: {len(values)} values, but other options give {lines}"
            )
    varying = [name for name, values in given.items() if len(values) > 1]
    series = []
    for line in range(lines):
        kwargs = {name: values[line % len(values)] for name, values in given.items()}
        for name, default in kind.defaults.items():
            kwargs.setdefault(name, default(steps))
        try:
            if kind.is_schedule:
                betas = schedule_values_from(kind.build(**kwargs), 0, steps)
            else:
                betas = kind.build(steps, **kwargs)
        except (ValueError, TypeError) as error:
            name = str(error).split(" ")[0]
            flag = OPTIONS[name].flag if name in OPTIONS else f"--{args.kind}"
            raise CommandLineError(f"{flag}: {error}") from None
        label = ", ".join(
            str(kwargs[n]) if len(varying) == 1 else f"{n}={kwargs[n]}" for n in varying
        )
        series.append((label or args.kind, betas))
    return series


def _write_csv(handle: Any, series: list[tuple[str, np.ndarray]]) -> None:
    writer = csv.writer(handle)
    writer.writerow(["step", *(label for label, _ in series)])
    for t in range(len(series[0][1])):
        writer.writerow([t, *(f"{values[t]:.9g}" for _, values in series)])


def _plot(args: argparse.Namespace) -> None:
    if args.out == "-":
        if not args.csv:
            raise CommandLineError("--out -: standard output takes --csv only, not an image")
        _values(args)
        return
    directory = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(directory):
        raise CommandLineError(f"--out: no such directory {directory!r}")
    if args.csv:
        series = _series(args)
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
    from kl_schedules.plot import plot_schedule

    fig, ax = plt.subplots(figsize=(7, 3))
    formats = fig.canvas.get_supported_filetypes()
    extension = os.path.splitext(args.out)[1].lstrip(".").lower()
    if extension not in formats:
        plt.close(fig)
        raise CommandLineError(
            f"--out: cannot write {extension or 'files without an extension'!r}; use one of "
            f"{sorted(formats)}, or --csv"
        )
    series = _series(args)
    for label, values in series:
        plot_schedule(values, len(values), ax=ax, label=label if len(series) > 1 else None)
    for step, flag in sorted(vars(args).get("toggle_steps", {}).items()):
        ax.axvline(step, color="grey", linestyle=":", linewidth=1)
        label = f"cyclical {'on' if flag else 'off'}"
        ax.annotate(label, (step, 0.5), rotation=90, fontsize=8, ha="right", color="grey")
    ax.set_title(args.title or f"{args.kind} schedule")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}")


def _values(args: argparse.Namespace) -> None:
    _write_csv(sys.stdout, _series(args))


def _add_schedule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind", choices=list(KINDS), default="monotonic", help="schedule family (monotonic)"
    )
    parser.add_argument("--steps", type=int, default=1000, help="steps to evaluate, from 0 (1000)")
    for option in OPTIONS.values():
        parser.add_argument(
            option.flag, dest=option.name, default=argparse.SUPPRESS, help=option.help
        )
    parser.add_argument(
        "--cyclical",
        action="store_true",
        default=argparse.SUPPRESS,
        help="annealer: start cyclical",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kl-schedules",
        description="Inspect KL-annealing (beta) schedules. Unset options take the "
        "library's defaults.",
        epilog=(__doc__ or "").split("Examples::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kl-schedules {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    plot = commands.add_parser("plot", help="draw a schedule to PNG (or CSV with --csv)")
    _add_schedule_options(plot)
    plot.add_argument(
        "--out", default="schedule.png", help="output file (schedule.png); - with --csv: stdout"
    )
    plot.add_argument("--csv", action="store_true", help="write CSV (step, beta...) instead")
    plot.add_argument("--title", default=None, help="figure title")
    plot.set_defaults(run=_plot)
    values = commands.add_parser("values", help="print step,beta as CSV to stdout")
    _add_schedule_options(values)
    values.set_defaults(run=_values)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # bad syntax: one line, exit 2
    if args.kind == "annealer" and "toggle" in vars(args):
        try:
            args.toggle_steps = _toggles(args.toggle)
        except ValueError as error:
            print(f"kl-schedules: error: --toggle: {error}", file=sys.stderr)
            return 2
    try:
        args.run(args)
    except CommandLineError as error:
        print(f"kl-schedules: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `values | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as error:
        print(f"kl-schedules: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

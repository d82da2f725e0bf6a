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
import math
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import kl_schedules
from kl_schedules._annealer import Annealer, AnnealerSettings
from kl_schedules._schedules import Schedule, schedule_values_from
from kl_schedules._shapes import SHAPE_NAMES
from kl_schedules._validation import ArgumentError, check_count
from kl_schedules._version import __version__


class CommandLineError(Exception):
    """A bad option: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (no usage block), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# ---- reading option text, by the setting's annotated type -----------------------------------


def _float(text: str) -> float:
    """A float, refusing text that a float cannot hold (``1e-400`` is not 0, ``1e400`` is
    not infinite), so an error never reports a value the user did not type."""
    value = float(text)
    mantissa = re.split("[eE]", text)[0]
    if value == 0.0 and any(digit in mantissa for digit in "123456789"):
        raise ValueError(f"{text!r} is not 0 but is too small for a float, which rounds it to 0")
    if math.isinf(value) and "inf" not in text.lower():
        raise ValueError(f"{text!r} is too large for a float")
    return value


def _integer(text: str) -> float | int:
    """An int; ``1e3`` is read as a float and left to the setting's own check."""
    try:
        return int(text)
    except ValueError:
        return _float(text)


def _toggles(text: str) -> dict[int, bool]:
    toggles = {}
    for item in filter(None, text.split(",")):
        step, _, flag = item.partition(":")
        if not step.strip().isdigit() or flag.strip() not in ("on", "off"):
            raise ValueError(f"expected STEP:on|off items, got {item!r}")
        toggles[int(step)] = flag.strip() == "on"
    return toggles


def _reader(hint: Any) -> Callable[[str], Any]:
    """How to read a setting of type ``hint`` from its text."""
    if typing.get_origin(hint) is dict:  # the Annealer's toggles
        return _toggles
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if str in members:  # a shape: its name
        return str
    read = _integer if int in members else _float
    if type(None) in members:
        return lambda text: None if text.lower() == "none" else read(text)
    return read


# ---- the kinds: the schedules' dataclasses, and the Annealer's settings ------------------------


@dataclasses.dataclass(frozen=True)
class Family:
    """A ``--kind``: its settings (name -> annotated type), the library's defaults of those
    that have one, the function whose docstring's Args describe them, and how to compute its
    betas."""

    settings: dict[str, Any]
    defaults: dict[str, Any]
    args_documented_in: Any
    betas: Callable[[int, dict[str, Any]], np.ndarray]


#: Settings that default to a function of --steps rather than to the library's default.
RUN_DEFAULTS: dict[str, Callable[[int], Any]] = {
    "total_steps": lambda steps: steps,
    "period": lambda steps: max(steps / 4, 2),
}
#: Options of the command line only: the Annealer's cyclical switches.
EXTRA_OPTIONS = {"toggle": "annealer: STEP:on|off,... switches cyclical mode at those steps"}


def _schedule_family(cls: type[Schedule]) -> Family:
    fields = dataclasses.fields(cls)
    hints = typing.get_type_hints(cls)
    return Family(
        settings={field.name: hints[field.name] for field in fields},
        defaults={f.name: f.default for f in fields if f.default is not dataclasses.MISSING},
        args_documented_in=getattr(kl_schedules, cls.factory),
        betas=lambda steps, settings: schedule_values_from(cls(**settings), 0, steps),
    )


def _annealer_betas(num_steps: int, settings: dict[str, Any]) -> np.ndarray:
    """The Annealer's beta at each of ``num_steps`` steps, toggled on the way."""
    settings = dict(settings)
    toggle = settings.pop("toggle", {})
    annealer = Annealer(**settings)
    values = np.empty(num_steps)
    for t in range(num_steps):
        if t in toggle:
            annealer.set_cyclical(toggle[t])
        values[t] = annealer.beta
        annealer.step()
    return values


def _annealer_family() -> Family:
    hints = typing.get_type_hints(AnnealerSettings)
    settings = {field.name: hints[field.name] for field in dataclasses.fields(AnnealerSettings)}
    return Family(
        settings=settings | {"toggle": dict[int, bool]},
        defaults={},  # unset settings are not passed: the Annealer's own defaults apply
        args_documented_in=Annealer,
        betas=_annealer_betas,
    )


FAMILIES: dict[str, Family] = {
    kind: _schedule_family(cls)
    for kind, cls in Schedule.by_kind.items()
    if Schedule not in typing.get_type_hints(cls).values()  # not a wrapper of a schedule
} | {"annealer": _annealer_family()}


def _arg_help(function: Any) -> dict[str, str]:
    """``name -> first clause`` of each entry of a docstring's ``Args:`` section."""
    args = (function.__doc__ or "").partition("Args:")[2].partition("Returns:")[0]
    found = re.findall(r"^ {6}(\w+): (.+?)(?:[.;]\s|\n {6}\w|\n\n|\Z)", args, re.M | re.S)
    clauses = {name: " ".join(text.replace("``", "").split()) for name, text in found}
    return {name: _close(text) for name, text in clauses.items()}


def _close(text: str) -> str:
    """A clause cut inside parentheses loses the open parenthesis (intervals such as
    ``(0, 1]`` mix brackets, so they are counted together)."""
    opened = text.count("(") + text.count("[")
    if opened > text.count(")") + text.count("]"):
        return text[: text.rindex("(")].strip()
    return text


def _help(name: str) -> str:
    if name in EXTRA_OPTIONS:
        return EXTRA_OPTIONS[name]
    kinds = [kind for kind, family in FAMILIES.items() if name in family.settings]
    if _reader(OPTIONS[name]) is str:  # the command line takes a shape by its name only
        text = f"ramp shape: {', '.join(SHAPE_NAMES)}"
    else:
        text = _arg_help(FAMILIES[kinds[0]].args_documented_in).get(name, name.replace("_", " "))
    defaults = {repr(FAMILIES[k].defaults[name]) for k in kinds if name in FAMILIES[k].defaults}
    if name in RUN_DEFAULTS:
        text += " (default: set by --steps)"
    elif defaults:
        text += f" (default {' or '.join(sorted(defaults))})"
    return f"{', '.join(kinds)}: {text}"


OPTIONS: dict[str, Any] = {}  # every setting of every kind: name -> annotated type
for _family in FAMILIES.values():
    OPTIONS.update(_family.settings)


# ---- the lines to draw -----------------------------------------------------------------------


def _given(args: argparse.Namespace) -> dict[str, list[tuple[str, Any]]]:
    """The options given on the command line, each as a list of ``(text, value)``."""
    given: dict[str, list[tuple[str, Any]]] = {}
    for name, hint in OPTIONS.items():
        if name not in vars(args):
            continue
        value = vars(args)[name]
        if hint is bool:  # a switch
            given[name] = [("", True)]
            continue
        read = _reader(hint)
        items = [value] if typing.get_origin(hint) is dict else value.split(",")
        try:
            given[name] = [(item.strip(), read(item.strip())) for item in items]
        except ValueError as error:
            raise CommandLineError(f"{_flag(name)}: cannot read {value!r} ({error})") from None
    return given


def _series(args: argparse.Namespace) -> list[tuple[str, np.ndarray]]:
    """``(label, beta for steps 0 .. steps-1)`` for every line requested."""
    try:
        steps = check_count("steps", args.steps)
    except ValueError as error:
        raise CommandLineError(f"--steps: {error}") from None
    family = FAMILIES[args.kind]
    given = _given(args)
    wrong = [name for name in given if name not in family.settings]
    if wrong:
        takes = ", ".join(map(_flag, family.settings))
        flags = ", ".join(map(_flag, wrong))
        raise CommandLineError(f"{flags} does not apply to --kind {args.kind} (it takes {takes})")
    shapes = [value for _, value in given.get("shape", [("", family.defaults.get("shape"))])]
    if "steepness" in given and "logistic" not in shapes:
        raise CommandLineError("--steepness applies only to --shape logistic")
    lines = max((len(v) for v in given.values()), default=1)
    for name, values in given.items():
        if len(values) not in (1, lines):
            raise CommandLineError(
                f"{_flag(name)}: {len(values)} values, but other options give {lines}"
            )
    varying = [name for name, values in given.items() if len(values) > 1]
    series = []
    for line in range(lines):
        chosen = {name: values[line % len(values)] for name, values in given.items()}
        settings = {name: value for name, (_, value) in chosen.items()}
        for name, default in RUN_DEFAULTS.items():
            if name in family.settings:
                settings.setdefault(name, default(steps))
        try:
            betas = family.betas(steps, settings)
        except ArgumentError as error:  # mapped to its option by the name it carries
            if error.argument not in chosen:
                raise CommandLineError(f"--kind {args.kind}: {error}") from None
            text = chosen[error.argument][0]
            flag = f"{_flag(error.argument)} {text}" if text else _flag(error.argument)
            raise CommandLineError(f"{flag}: {error}") from None
        except (ValueError, TypeError) as error:  # a check that names no single option
            raise CommandLineError(f"--kind {args.kind}: {error}") from None
        label = ", ".join(
            str(settings[n]) if len(varying) == 1 else f"{n}={settings[n]}" for n in varying
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
    for step, flag in sorted(_toggles(vars(args).get("toggle", "")).items()):
        ax.axvline(step, color="grey", linestyle=":", linewidth=1)
        label = f"cyclical {'on' if flag else 'off'}"
        ax.annotate(label, (step, 0.5), rotation=90, fontsize=8, ha="right", color="grey")
    ax.set_title(f"{args.kind} schedule" if args.title is None else args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}")


def _values(args: argparse.Namespace) -> None:
    _write_csv(sys.stdout, _series(args))


def _add_schedule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind", choices=list(FAMILIES), default="monotonic", help="schedule family (monotonic)"
    )
    parser.add_argument("--steps", type=int, default=1000, help="steps to evaluate, from 0 (1000)")
    for name, hint in OPTIONS.items():
        switch: dict[str, Any] = {"action": "store_true"} if hint is bool else {}
        parser.add_argument(
            _flag(name), dest=name, default=argparse.SUPPRESS, help=_help(name), **switch
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

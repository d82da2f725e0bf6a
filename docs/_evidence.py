"""Tables for the documentation, generated from the committed results files.

The docs build (``docs/conf.py``) writes them to ``docs/_generated/`` and the pages include
them, so a table cannot drift from its data; ``tests/test_readme.py`` checks that the
README's headline table is exactly :func:`headline_table`. Standard library only.

    python docs/_evidence.py    # prints the README's headline table
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
EVIDENCE = DOCS / "posterior_collapse"
BENCHMARK_RESULTS = ROOT / "benchmarks" / "results"

# (run key, header, decimals) of the full tables, in the order of the experiment's report
COLUMNS = (
    ("kl", "KL", 2),
    ("mutual_info", "MI", 2),
    ("active_units", "AU (of {latent})", 1),
    ("probe_accuracy", "probe acc. (chance {chance})", 2),
    ("train_recon", "train recon", 2),
    ("recon", "held-out recon", 2),
    ("elbo", "ELBO", 2),
    ("nll_iw", "NLL (IW)", 2),
)
KL_CHANGE = ("kl_change_last_quarter", "KL change, last 25%", 2)
CHANCE = {"topics": None, "digits": 0.10, "toy": None}  # topics: 1 / number of topics


def load(name: str) -> dict[str, Any]:
    """One results file, ``docs/posterior_collapse/<name>/results.json``."""
    data: dict[str, Any] = json.loads((EVIDENCE / name / "results.json").read_text())
    return data


def arm_label(schedule: str, arms: dict[str, dict[str, Any]]) -> str:
    """The arm's name in a table, from its settings in the results' config."""
    settings = arms.get(schedule, {})
    if schedule == "constant":
        return f"constant beta = {settings.get('beta', 1.0):g}"
    if schedule == "monotonic":
        share = round(100 * settings["ramp_fraction"])
        return f"monotonic ({settings['shape']}, first {share}%)"
    if schedule.startswith("cyclical"):
        cycles, ratio, shape = settings["cycles"], settings["ratio"], settings["shape"]
        return f"cyclical (M={cycles}, R={ratio:g}, {shape})"
    if schedule == "pi":
        return f"PI control, target {settings['target']:g} nats"
    if schedule == "free-bits":
        return f"free bits, {settings['nats_per_dim']:g} nats/dim"
    return schedule


def _groups(results: dict[str, Any], dataset: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in results["runs"]:
        if run["dataset"] == dataset:
            groups.setdefault(run["schedule"], []).append(run)
    return groups


def mean_std(values: list[float], decimals: int) -> str:
    """``mean ± std`` over seeds (sample standard deviation), as the experiment reports."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{decimals}f} ± {std:.{decimals}f}"


def _chance(results: dict[str, Any], dataset: str) -> str:
    chance = CHANCE.get(dataset)
    if chance is None and dataset == "topics":
        chance = 1 / results["config"]["datasets"]["topics"]["data"]["topics"]
    return "-" if chance is None else f"{chance:.3g}"


def _collapse_cell(group: list[dict[str, Any]]) -> str:
    steps = [run["collapse_step"] for run in group]
    flagged = sorted(step for step in steps if step is not None)
    if not flagged:
        return f"never (0 of {len(steps)})"
    where = f"step {flagged[0]}" if len(flagged) == 1 else f"steps {flagged[0]}-{flagged[-1]}"
    return f"{len(flagged)} of {len(steps)}, {where}"


def results_table(
    results: dict[str, Any], dataset: str, *, kl_change: bool = False, part: str = "all"
) -> str:
    """Mean ± std over seeds, one row per arm; a column for the collapse monitor's verdict
    when the runs record ``collapse_step``. ``part="use"``: only the latent-use columns
    (KL, MI, AU, probe); ``part="fit"``: only the fit columns (recon, ELBO, NLL)."""
    config = results["config"]["datasets"][dataset]
    columns = [*COLUMNS, KL_CHANGE] if kl_change else list(COLUMNS)
    if part == "use":
        columns = columns[:4]
    elif part == "fit":
        columns = columns[4:]
    groups = _groups(results, dataset)
    monitored = part != "fit" and all(
        "collapse_step" in run for group in groups.values() for run in group
    )
    fill = {"latent": config["model"]["latent"], "chance": _chance(results, dataset)}
    header = ["arm", *(title.format(**fill) for _, title, _ in columns)]
    if monitored:
        header.append("monitor flagged collapse (seeds, step)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for schedule, group in groups.items():
        cells = [arm_label(schedule, results["config"]["arms"])]
        cells += [mean_std([run[key] for run in group], dec) for key, _, dec in columns]
        if monitored:
            cells.append(_collapse_cell(group))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_table(topics: dict[str, Any], digits: dict[str, Any]) -> str:
    """The README's table: the topic data's latent-use numbers and the KL on digits."""
    latent = topics["config"]["datasets"]["topics"]["model"]["latent"]
    chance = _chance(topics, "topics")
    header = [
        "arm",
        "KL (nats)",
        "MI (nats)",
        f"active units (of {latent})",
        f"probe acc. (chance {chance})",
        "KL on digits",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    digit_groups = _groups(digits, "digits")
    for schedule, group in _groups(topics, "topics").items():
        cells = [arm_label(schedule, topics["config"]["arms"])]
        cells.append(mean_std([run["kl"] for run in group], 2))
        cells.append(mean_std([run["mutual_info"] for run in group], 2))
        cells.append(mean_std([run["active_units"] for run in group], 1))
        cells.append(mean_std([run["probe_accuracy"] for run in group], 2))
        other = digit_groups.get(schedule)
        cells.append(mean_std([run["kl"] for run in other], 2) if other else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_facts(results: dict[str, Any], dataset: str) -> str:
    """Seeds, steps and the training time recorded in the results file."""
    runs = [run for run in results["runs"] if run["dataset"] == dataset]
    seeds = ", ".join(str(seed) for seed in dict.fromkeys(run["seed"] for run in runs))
    steps = sorted({run["steps_trained"] for run in runs})
    per_seed = sorted({round(run["train_seconds_all_arms"]) for run in runs})
    arms = len({run["schedule"] for run in runs})
    took = f"{per_seed[0]}" if per_seed[0] == per_seed[-1] else f"{per_seed[0]}-{per_seed[-1]}"
    return (
        f"Seeds {seeds}; {', '.join(map(str, steps))} steps. Training all {arms} arms of one "
        f"seed (one process, one jitted scan) took {took} s, as recorded in the results file "
        "(2 CPU cores of a shared virtual machine)."
    )


def benchmark_tables() -> str:
    """One table per committed benchmark results file, as ``benchmarks/run.py --markdown``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _harness import markdown_table
    finally:
        sys.path.pop(0)
    parts = []
    for path in sorted(BENCHMARK_RESULTS.glob("*.json")):
        parts.append(f"### `benchmarks/results/{path.name}`\n")
        parts.append(markdown_table(json.loads(path.read_text())) + "\n")
    return "\n".join(parts)


def write_generated(out: Path = DOCS / "_generated") -> None:
    """Write every generated table as a Markdown file that the pages include."""
    out.mkdir(exist_ok=True)
    topics, digits, default = load("topics"), load("digits"), load("default")
    files = {
        "headline.md": headline_table(topics, digits),
        "topics_use_table.md": results_table(topics, "topics", part="use"),
        "topics_fit_table.md": results_table(topics, "topics", part="fit"),
        "topics_facts.md": run_facts(topics, "topics"),
        "default_use_table.md": results_table(default, "topics", part="use"),
        "default_fit_table.md": results_table(default, "topics", kl_change=True, part="fit"),
        "default_facts.md": run_facts(default, "topics"),
        "digits_use_table.md": results_table(digits, "digits", part="use"),
        "digits_fit_table.md": results_table(digits, "digits", part="fit"),
        "digits_facts.md": run_facts(digits, "digits"),
        "benchmarks.md": benchmark_tables(),
    }
    for name, text in files.items():
        if name.endswith("table.md") or name == "headline.md":
            text = text.replace(" ± ", "\u00a0±\u00a0")  # a cell's mean and std stay together
        path = out / name
        if not path.exists() or path.read_text() != text + "\n":  # keep mtimes stable
            path.write_text(text + "\n")


if __name__ == "__main__":
    print(headline_table(load("topics"), load("digits")))

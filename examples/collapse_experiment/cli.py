"""Command line: options, the run's configuration, progress and outputs.

Explicit options always win; ``--quick`` only changes the defaults. The configuration
written to ``results.json`` holds exactly the settings the code reads.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import jax.numpy as jnp

from kl_schedules.control import free_bits, pi_controller

from .data import DATASETS, topic_markov_nll
from .report import plot_curves, plot_digits, summary_table
from .train import SCHEDULES, train_arms

# Per data set: generator arguments, model, training and evaluation settings; steps are
# (default, --quick default).
SETTINGS: dict[str, dict[str, Any]] = {
    "topics": {
        "data": {"topics": 8, "vocab": 50, "length": 12, "train": 100_000, "test": 2000},
        "model": {"embed": 32, "hidden": 64, "latent": 8, "encoder": "lstm"},
        "steps": (3000, 1500),
        "batch": 64,
        "learning_rate": 3e-3,
        "eval": {
            "eval_size": 1000,
            "recon_samples": 16,
            "iw_samples": 128,
            "sample_chunk": 8,
            "probe_train_size": 10_000,
            "monitor_size": 500,
        },
    },
    "digits": {
        "data": {"threshold": 8, "test": 300},
        "model": {"embed": 16, "hidden": 32, "latent": 8, "encoder": "mlp"},
        "steps": (3000, 300),
        "batch": 64,
        "learning_rate": 3e-3,
        "eval": {
            "eval_size": 300,
            "recon_samples": 16,
            "iw_samples": 128,
            "sample_chunk": 16,
            "probe_train_size": 10_000,
            "monitor_size": 300,
        },
    },
    "toy": {
        "data": {"count": 10, "vocab": 100, "length": 10},
        "model": {"embed": 32, "hidden": 64, "latent": 8, "encoder": "lstm"},
        "steps": (2000, 500),
        "batch": 64,
        "learning_rate": 3e-3,
        "eval": {
            "eval_size": 10,
            "recon_samples": 16,
            "iw_samples": 128,
            "sample_chunk": 16,
            "probe_train_size": 10,
            "monitor_size": 10,
        },
    },
}

DEFAULTS = {"seeds": "0,1,2", "datasets": "topics", "schedules": ",".join(SCHEDULES)}
QUICK_DEFAULTS = {"seeds": "0", "datasets": "topics", "schedules": "constant,pi,free-bits"}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Posterior collapse in a VAE with an autoregressive decoder, under "
        "constant beta, KL annealing schedules, PI control and free bits."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="change the defaults to: seed 0, arms constant,pi,free-bits, fewer "
        "steps (topics 1500); under 90 s on 2 cores. Explicit options still win.",
    )
    parser.add_argument("--seeds", help=f"comma-separated seeds (default {DEFAULTS['seeds']})")
    parser.add_argument(
        "--datasets", help=f"comma-separated, from {list(DATASETS)} (default topics)"
    )
    parser.add_argument(
        "--schedules", help=f"comma-separated, from {list(SCHEDULES)} (default all)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        help="train steps per run, exactly (default per data set: "
        + ", ".join(f"{name} {s['steps'][0]}" for name, s in SETTINGS.items())
        + ")",
    )
    parser.add_argument(
        "--hidden",
        type=int,
        help="LSTM size of encoder and decoder, every data set (default: topics 64, digits 32)",
    )
    parser.add_argument("--out", default="out/posterior_collapse", help="output directory")
    parser.add_argument(
        "--jobs",
        type=int,
        help="parallel processes, one (data set, seed) each, single-threaded (default: one "
        "per pair, at most CPU count + 1); 1 runs everything in this process",
    )
    parser.add_argument(
        "--pi-target", type=float, default=2.0, help="pi arm: target KL, nats (default 2)"
    )
    parser.add_argument("--pi-kp", type=float, default=0.01, help="pi arm: k_p (default 0.01)")
    parser.add_argument(
        "--pi-ki",
        type=float,
        default=1e-3,
        help="pi arm: k_i (default 1e-3; the reference 1e-4 is tuned for ~1e5 steps)",
    )
    parser.add_argument(
        "--free-bits",
        type=float,
        default=0.25,
        help="free-bits arm: nats per latent dimension (default 0.25)",
    )
    args = parser.parse_args(argv)
    defaults = QUICK_DEFAULTS if args.quick else DEFAULTS
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    try:
        args.seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    args.datasets, args.schedules = args.datasets.split(","), args.schedules.split(",")
    for name, allowed in (("datasets", DATASETS), ("schedules", SCHEDULES)):
        values = getattr(args, name)
        unknown = [v for v in values if v not in allowed]
        if unknown:
            parser.error(f"--{name}: unknown {unknown}; choose from {list(allowed)}")
        if len(set(values)) != len(values):
            parser.error(f"--{name}: repeated values in {values}")
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    for name in ("steps", "hidden"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    try:  # the library validates the controller and free-bits arguments
        pi_controller(args.pi_target, k_p=args.pi_kp, k_i=args.pi_ki)
        free_bits(jnp.zeros(1), args.free_bits)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    return args


def build_config(args) -> dict[str, Any]:
    """The run's settings: only those of the chosen data sets and arms."""
    arms = {
        "constant": {"beta": 1.0},
        "monotonic": {"ramp_fraction": 0.25, "shape": "linear"},
        "cyclical": {"cycles": 4, "ratio": 0.5, "shape": "linear"},
        "cyclical-cosine": {"cycles": 4, "ratio": 0.5, "shape": "cosine"},
        "pi": {"target": args.pi_target, "k_p": args.pi_kp, "k_i": args.pi_ki},
        "free-bits": {"nats_per_dim": args.free_bits},
    }
    datasets = {}
    for name in args.datasets:
        settings = dict(SETTINGS[name])
        default, quick = settings.pop("steps")
        steps = args.steps if args.steps is not None else (quick if args.quick else default)
        if args.hidden is not None:
            settings["model"] = {**settings["model"], "hidden": args.hidden}
        datasets[name] = {**settings, "steps": steps}
    return {
        "seeds": args.seeds,
        "schedules": args.schedules,
        "arms": {name: arms[name] for name in args.schedules},
        "datasets": datasets,
    }


class Progress:
    """Progress lines: rewritten in place (``\\r``) on a terminal; elsewhere (a log file,
    a pipe), or when ``plain``, one line per tenth of each run. A line logged with
    ``fraction=None`` (a message, such as the collapse monitor's warning) is always
    written, on a line of its own."""

    def __init__(self, stream=None, plain: bool = False):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() and not plain
        self.tenth: int | None = None

    def __call__(self, line: str, fraction: float | None) -> None:
        if fraction is None:
            self.stream.write(("\n" if self.tty else "") + line + "\n")
        elif self.tty:
            self.stream.write("\r" + line + ("\n" if fraction >= 1 else ""))
        else:
            tenth = math.floor(fraction * 10 + 1e-9)
            if tenth != self.tenth:
                self.stream.write(line + "\n")
            self.tenth = tenth
        self.stream.flush()


def run_job(dataset: str, seed: int, config: dict, out: str, plain: bool) -> list[dict]:
    """Trains and evaluates every arm on one (data set, seed); draws the digit images for
    the first seed of the digits."""
    settings = config["datasets"][dataset]
    data = DATASETS[dataset](seed, **settings["data"])
    names = config["schedules"]
    runs, model, params = train_arms(
        dataset, data, names, seed, settings, config["arms"], Progress(plain=plain)
    )
    if dataset == "digits" and seed == config["seeds"][0]:
        plot_digits(model, params, names, data, seed, Path(out) / "digits.png")
    if dataset == "topics":  # the floors: the generator's own NLL, without and with the topic
        nll, nll_given_topic = topic_markov_nll(
            seed, data.test, data.test_labels, **settings["data"]
        )
        for run in runs:
            run.update(data_nll=nll, data_nll_given_topic=nll_given_topic)
    return runs


def _single_threaded() -> None:
    """Worker set-up, before JAX starts its backend: one thread per process. Matmuls this
    small barely use a second thread (10% faster than one, measured on 2 cores), so one
    process per core trains 1.5-2 times as many steps per second."""
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = build_config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(dataset, seed) for dataset in args.datasets for seed in args.seeds]
    workers = min(args.jobs or (os.cpu_count() or 1) + 1, len(jobs))
    steps = ", ".join(f"{name} {c['steps']}" for name, c in config["datasets"].items())
    print(
        f"Training {len(args.schedules)} arms on {len(jobs)} (data set, seed) pairs, steps: "
        f"{steps}; {workers} process(es); writing to {out}/",
        flush=True,
    )
    started = time.perf_counter()
    if workers == 1:
        runs = [run for job in jobs for run in run_job(*job, config, str(out), plain=False)]
    else:  # one single-threaded process per (data set, seed); lines, not \r, as they interleave
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, context, initializer=_single_threaded) as pool:
            futures = [pool.submit(run_job, *job, config, str(out), True) for job in jobs]
            runs = [run for future in futures for run in future.result()]
    wall_seconds = time.perf_counter() - started
    print(
        f"\nHeld-out metrics (nats per sequence), mean ± std over seeds; "
        f"{wall_seconds:.0f} s in all:\n" + summary_table(runs)
    )
    timing = {  # how long the command took, and how busy the machine was at the end
        "wall_seconds": round(wall_seconds, 1),
        "processes": workers,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    result = {"config": config, "timing": timing, "runs": runs}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    plot_curves(runs, out / "curves.png", SCHEDULES)
    figures = ["curves.png", *(["digits.png"] if "digits" in args.datasets else [])]
    print(
        f"\nwrote {out / 'results.json'}, " + ", ".join(str(out / f) for f in figures), flush=True
    )
    return result

"""kl_schedules benchmarks: is beta free? Ours against the named baseline, interleaved.

    python benchmarks/run.py [--quick] [--out FILE]

Every ratio is (our time) / (baseline time), both measured in the same process in
alternation (A B A B ...), and the median over repeats is reported. Targets:
train_step_overhead <= 1.02, vectorized_eval <= 1.0 vs optax and >= 100x faster than the
NumPy loop, scan_annealer <= 1.2, host_annealer <= 1.5.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from kl_schedules import Annealer, AnnealerState, annealing, cyclical_schedule, monotonic_schedule


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Runs each timing function once per round (A B A B ...), in a shuffled order each
    round so that no candidate always runs first; returns all samples."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            samples[name].append(fns[name]())
    return samples


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# Sizes per mode: "full" (default), "quick" (< 2 min on 2 CPU cores), "tiny" (the test).
SIZES = {
    "full": dict(
        name="full",
        train_processes=5,
        train_steps=20,
        train_repeats=41,
        eval_n=10**7,
        eval_repeats=31,
        loop_repeats=3,
        scan_n=10**6,
        scan_repeats=15,
        host_calls=100_000,
        host_repeats=15,
        compile_repeats=7,
    ),
    "quick": dict(
        name="quick",
        train_processes=3,
        train_steps=20,
        train_repeats=7,
        eval_n=10**7,
        eval_repeats=5,
        loop_repeats=1,
        scan_n=10**6,
        scan_repeats=5,
        host_calls=20_000,
        host_repeats=7,
        compile_repeats=3,
    ),
    "tiny": dict(
        name="tiny",
        train_processes=1,
        train_steps=2,
        train_repeats=2,
        eval_n=10**4,
        eval_repeats=2,
        loop_repeats=1,
        scan_n=10**3,
        scan_repeats=2,
        host_calls=100,
        host_repeats=2,
        compile_repeats=1,
    ),
}


# ---- 1. train step overhead --------------------------------------------------------------


def make_vae_step(beta_kind: str, features: int = 784, hidden: int = 256, latent: int = 32):
    """A jitted MLP-VAE train step (Adam) whose beta comes from ``beta_kind``."""
    from flax import linen as nn

    class VAE(nn.Module):
        @nn.compact
        def __call__(self, x, key):
            h = nn.relu(nn.Dense(hidden)(x))
            mu, logvar = jnp.split(nn.Dense(2 * latent)(h), 2, axis=-1)
            z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
            return nn.Dense(features)(nn.relu(nn.Dense(hidden)(z))), mu, logvar

    model, tx = VAE(), optax.adam(1e-3)
    schedules = {
        "cyclical": cyclical_schedule(period=2500, ratio=0.5),
        "monotonic_logistic": monotonic_schedule(10_000, shape="logistic"),
    }
    annealer = annealing(1000, "cosine")

    def beta_of(step, ann):
        if beta_kind in ("constant", "constant_copy"):
            return jnp.float32(1.0)
        if beta_kind == "annealer_state":
            return annealer.beta(ann)
        return schedules[beta_kind](step)

    def train_step(carry, x):
        params, opt_state, step, ann, key = carry
        key, sub = jax.random.split(key)
        beta = beta_of(step, ann)

        def loss_fn(params):
            logits, mu, logvar = model.apply({"params": params}, x, sub)
            recon = optax.sigmoid_binary_cross_entropy(logits, x).sum(-1).mean()
            kl = (-0.5 * (1 + logvar - mu**2 - jnp.exp(logvar)).sum(-1)).mean()
            return recon + beta * kl

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        ann = annealer.step(ann) if beta_kind == "annealer_state" else ann
        return params, opt_state, step + 1, ann, key

    key = jax.random.key(0)
    params = model.init(key, jnp.zeros((1, features)), key)["params"]
    carry = (params, tx.init(params), jnp.int32(0), annealer.init(cyclical=True), key)
    return train_step, carry


TRAIN_KINDS = ("constant", "constant_copy", "cyclical", "monotonic_logistic", "annealer_state")


def train_step_samples(size: dict) -> dict[str, list[float]]:
    """Seconds per train step for every kind, one sample per kind per interleaved round."""
    x = (jax.random.uniform(jax.random.key(1), (128, 784)) < 0.3).astype(jnp.float32)
    steps_per_sample = size["train_steps"]
    timers, carries = {}, {}
    for kind in TRAIN_KINDS:
        step_fn, carry = make_vae_step(kind)
        jitted = jax.jit(step_fn, donate_argnums=0)
        carry = jitted(carry, x)
        jax.block_until_ready(carry)
        carries[kind] = carry

        def timer(kind=kind, jitted=jitted):
            carry = carries[kind]
            start = time.perf_counter()
            for _ in range(steps_per_sample):
                carry = jitted(carry, x)
            jax.block_until_ready(carry)
            carries[kind] = carry
            return (time.perf_counter() - start) / steps_per_sample

        timers[kind] = timer
    return interleaved(timers, size["train_repeats"])


def bench_train_step(size: dict) -> dict[str, Any]:
    """Within one process, a step's time is biased by a few percent for the whole life of
    the process, differently for identical executables (the A/A control shows it). So the
    interleaved measurement runs in ``train_processes`` fresh processes; within one, the
    ratio is the median over rounds of (ours / constant) in the same round; the reported
    ratio is the median over processes."""
    per_process = []
    for _ in range(size["train_processes"]):
        worker = subprocess.run(
            [sys.executable, __file__, "--worker", "train_step_overhead", "--mode", size["name"]],
            capture_output=True,
            text=True,
            check=True,
        )
        per_process.append(json.loads(worker.stdout.strip().splitlines()[-1]))

    def paired(samples: dict[str, list[float]], kind: str) -> float:
        return median([a / b for a, b in zip(samples[kind], samples["constant"], strict=True)])

    ratios = {k: [paired(p, k) for p in per_process] for k in TRAIN_KINDS[1:]}
    base = median([median(p["constant"]) for p in per_process])
    return {
        f"train_step_overhead/{kind}": {
            "ratio": median(ratios[kind]),
            "baseline": "same jitted step with constant beta",
            "aa_control_ratio": median(ratios["constant_copy"]),
            "per_process_ratios": [round(r, 4) for r in ratios[kind]],
            "us_per_step": median([median(p[kind]) for p in per_process]) * 1e6,
            "baseline_us_per_step": base * 1e6,
            "target": "<= 1.02",
        }
        for kind in TRAIN_KINDS[2:]
    }


# ---- 2. vectorised evaluation ------------------------------------------------------------


def fu_frange_cycle_linear(n_iter, start=0.0, stop=1.0, n_cycle=4, ratio=0.5):
    """Fu et al.'s reference loop (REFERENCE.md section 2), float accumulator and all."""
    out = np.ones(n_iter) * stop
    period = n_iter / n_cycle
    step = (stop - start) / (period * ratio)
    for c in range(n_cycle):
        v, i = start, 0
        while v <= stop and (int(i + c * period) < n_iter):
            out[int(i + c * period)] = v
            v += step
            i += 1
    return out


def bench_vectorized(size: dict) -> dict[str, Any]:
    n = size["eval_n"]
    cycles, ratio = 4, 0.5
    period = n / cycles
    ours = cyclical_schedule(period, ratio)
    # nearest optax composition: a linear ramp of optax, made periodic by t mod period
    ramp = optax.linear_schedule(0.0, 1.0, transition_steps=int(period * ratio))
    int_period = int(period)

    def optax_cyclical(t):
        return ramp(t % int_period)

    steps = jnp.arange(n, dtype=jnp.int32)
    jitted = {
        "ours": jax.jit(jax.vmap(ours)),
        "optax": jax.jit(jax.vmap(optax_cyclical)),
        "optax_copy": jax.jit(jax.vmap(lambda t: optax_cyclical(t))),  # A/A noise control
    }
    for fn in jitted.values():
        fn(steps).block_until_ready()

    def timer(fn):
        def run():
            start = time.perf_counter()
            fn(steps).block_until_ready()
            return time.perf_counter() - start

        return run

    samples = interleaved({k: timer(v) for k, v in jitted.items()}, size["eval_repeats"])
    loop_samples = []
    for _ in range(size["loop_repeats"]):
        start = time.perf_counter()
        reference = fu_frange_cycle_linear(n, n_cycle=cycles, ratio=ratio)
        loop_samples.append(time.perf_counter() - start)
    agree = float(np.max(np.abs(np.asarray(jitted["ours"](steps)) - reference)))
    ours_t, optax_t, loop_t = (median(s) for s in (samples["ours"], samples["optax"], loop_samples))
    return {
        "vectorized_eval": {
            "ratio": ours_t / optax_t,
            "baseline": "optax.linear_schedule applied to t mod period, jit+vmap",
            "steps": n,
            "ns_per_step": ours_t / n * 1e9,
            "optax_ns_per_step": optax_t / n * 1e9,
            "numpy_loop_ns_per_step": loop_t / n * 1e9,
            "speedup_vs_numpy_loop": loop_t / ours_t,
            "aa_control_ratio": median(samples["optax_copy"]) / optax_t,
            "max_abs_diff_vs_numpy_loop": agree,
            "target": "ratio <= 1.0, speedup_vs_numpy_loop >= 100",
        }
    }


# ---- 3. scan over AnnealerState ----------------------------------------------------------


def bench_scan(size: dict) -> dict[str, Any]:
    """AnnealerState in a scan, per shape, against (a) a bare int counter (the target),
    (b) a counter that evaluates the same weight formula (the cost of the state alone), and
    (c) the floor: a hand-written carry of the same two scalars with the documented stepping
    rule and no weight at all, a lower bound for any AnnealerState; and, for the record, the
    design not taken, beta read from a lookup table."""
    length, total = size["scan_n"], 1000
    runs: dict[str, tuple[Callable, Any]] = {}

    def counter(c):
        return jax.lax.scan(lambda c, _: (c + 1, c.astype(jnp.float32)), c, length=length)

    def two_scalar_floor(carry):
        def body(carry, _):
            s, cyclical = carry
            new = jnp.where(s < total, s + 1, s)
            new = jnp.where(cyclical & (new >= total), 0, new)
            return (new, cyclical), s.astype(jnp.float32)

        return jax.lax.scan(body, carry, length=length)

    runs["counter"] = (jax.jit(counter), jnp.int32(0))
    runs["floor"] = (jax.jit(two_scalar_floor), (jnp.int32(0), jnp.bool_(True)))
    for shape in ("linear", "cosine", "logistic"):
        fns = annealing(total, shape, baseline=0.1)
        host = Annealer(total, shape, baseline=0.1)

        def ours(state, fns=fns):
            return jax.lax.scan(lambda s, _: (fns.step(s), fns.beta(s)), state, length=length)

        def formula_only(c, fns=fns):
            def body(c, _):
                return c + 1, fns.beta(AnnealerState(c % total, jnp.bool_(False)))

            return jax.lax.scan(body, c, length=length)

        # The design not taken: beta read from a table of the T + 1 weights.
        table = np.empty(total + 1, np.float32)
        for t in range(total + 1):
            host.current_step = t
            table[t] = host.beta

        def lookup_table(state, fns=fns, table=table):
            def body(s, _):
                return fns.step(s), jnp.asarray(table)[s.step]

            return jax.lax.scan(body, state, length=length)

        runs[f"ours/{shape}"] = (jax.jit(ours), fns.init(True))
        runs[f"formula/{shape}"] = (jax.jit(formula_only), jnp.int32(0))
        runs[f"table/{shape}"] = (jax.jit(lookup_table), fns.init(True))
    for fn, arg in runs.values():
        jax.block_until_ready(fn(arg))

    def timer(fn, arg):
        def run():
            start = time.perf_counter()
            jax.block_until_ready(fn(arg))
            return time.perf_counter() - start

        return run

    samples = interleaved({k: timer(*v) for k, v in runs.items()}, size["scan_repeats"])
    base_t, floor_t = median(samples["counter"]), median(samples["floor"])
    results = {}
    for shape in ("linear", "cosine", "logistic"):
        ours_t, formula_t = median(samples[f"ours/{shape}"]), median(samples[f"formula/{shape}"])
        results[f"scan_annealer/{shape}"] = {
            "ratio": ours_t / base_t,
            "baseline": "lax.scan carrying only an int32 counter (emitting it as float)",
            "steps": length,
            "ns_per_step": ours_t / length * 1e9,
            "counter_ns_per_step": base_t / length * 1e9,
            "ratio_vs_counter_with_same_formula": ours_t / formula_t,
            "floor_ratio": floor_t / base_t,
            "ratio_vs_floor": ours_t / floor_t,
            "lookup_table_ns_per_step": median(samples[f"table/{shape}"]) / length * 1e9,
            "target": "<= 1.2",
        }
    return results


# ---- 4. host annealer --------------------------------------------------------------------


class PlainAnnealer:
    """Hand-written plain-Python annealer with the same formula (cosine, baseline)."""

    def __init__(self, total_steps, baseline=0.0, cyclical=False):
        import math

        self.cos, self.pi = math.cos, math.pi
        self.current_step, self.total_steps = 0, total_steps
        self.baseline, self.cyclical = baseline, cyclical

    def __call__(self, kld):
        y = (1 - self.cos(self.pi * self.current_step / self.total_steps)) / 2
        return kld * (y * (1 - self.baseline) + self.baseline)

    def step(self):
        if self.current_step < self.total_steps:
            self.current_step += 1
        if self.cyclical and self.current_step >= self.total_steps:
            self.current_step = 0


def bench_host(size: dict) -> dict[str, Any]:
    calls = size["host_calls"]
    values: dict[str, Any] = {"float": 1.5}
    try:
        import torch

        values["torch_0d"] = torch.tensor(1.5)
    except ImportError:  # pragma: no cover
        pass
    results = {}
    for kind, value in values.items():
        objects = {
            "ours": Annealer(1000, "cosine", 0.1, cyclical=True),
            "plain": PlainAnnealer(1000, 0.1, cyclical=True),
        }

        def timer(obj, value=value):
            def run():
                step, call = obj.step, obj
                start = time.perf_counter()
                for _ in range(calls):
                    step()
                    call(value)
                return (time.perf_counter() - start) / calls

            return run

        samples = interleaved({k: timer(o) for k, o in objects.items()}, size["host_repeats"])
        ours_t, base_t = median(samples["ours"]), median(samples["plain"])
        results[f"host_annealer/{kind}"] = {
            "ratio": ours_t / base_t,
            "baseline": "plain-Python class, same formula (step() + __call__)",
            "ns_per_call": ours_t * 1e9,
            "baseline_ns_per_call": base_t * 1e9,
            "target": "<= 1.5",
        }
    return results


# ---- 5. compile time ---------------------------------------------------------------------


def bench_compile(size: dict) -> dict[str, Any]:
    x = jnp.zeros((128, 784), jnp.float32)

    def compile_once(kind):
        def run():
            step_fn, carry = make_vae_step(kind)  # a fresh function: no compilation cache hit
            start = time.perf_counter()
            jax.jit(step_fn).lower(carry, x).compile()
            return time.perf_counter() - start

        return run

    kinds = ("constant", "cyclical", "monotonic_logistic", "annealer_state")
    samples = interleaved({k: compile_once(k) for k in kinds}, size["compile_repeats"])
    base = median(samples["constant"])
    return {
        f"compile_time/{kind}": {
            "ratio": median(samples[kind]) / base,
            "baseline": "compiling the same train step with constant beta",
            "seconds": median(samples[kind]),
            "baseline_seconds": base,
        }
        for kind in kinds[1:]
    }


BENCHMARKS = {
    "train_step_overhead": bench_train_step,
    "vectorized_eval": bench_vectorized,
    "scan_annealer": bench_scan,
    "host_annealer": bench_host,
    "compile_time": bench_compile,
}


def describe_device() -> tuple[str, str]:
    device = jax.devices()[0]
    backend = jax.default_backend()
    if backend == "cpu":
        name = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        import os

        return f"CPU: {name} ({os.cpu_count()} cores)", backend
    return f"{device.device_kind} ({device.platform})", backend


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "jax": jax.__version__, "optax": optax.__version__}
    for module in ("jaxlib", "flax", "numpy", "torch"):
        with contextlib.suppress(ImportError):
            out[module] = __import__(module).__version__
    return out


def markdown_table(report: dict[str, Any]) -> str:
    """The README's table of a results file: one row per benchmark."""

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        if isinstance(value, list):
            return "[" + ", ".join(fmt(v) for v in value) + "]"
        return str(value)

    rows = [
        f"Measured on {report['device']}, JAX {report['versions']['jax']} "
        f"({report['backend']}), `{report['command'].strip()}`:",
        "",
        "| benchmark | ratio | target | baseline; details |",
        "|---|---|---|---|",
    ]
    for name, row in report["results"].items():
        details = "; ".join(
            f"{key.replace('_', ' ')} {fmt(value)}"
            for key, value in row.items()
            if key not in ("ratio", "baseline", "target")
        )
        rows.append(
            f"| `{name}` | **{row['ratio']:.3f}** | {row.get('target', '-')} "
            f"| {row['baseline']}; {details} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats: < 2 min on 2 cores")
    parser.add_argument("--tiny", action="store_true", help="minimal sizes (a smoke test)")
    parser.add_argument("--out", default=None, help="JSON file to write")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated subset of {list(BENCHMARKS)}"
    )
    parser.add_argument(
        "--markdown", default=None, metavar="JSON", help="print a results file as a table"
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="full", choices=list(SIZES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(json.loads(Path(args.markdown).read_text())))
        return {}
    if args.worker == "train_step_overhead":  # one process of bench_train_step
        print(json.dumps(train_step_samples(SIZES[args.mode])))
        return {}
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"--only: unknown {unknown}; choose from {list(BENCHMARKS)}")
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    device, backend = describe_device()
    print(f"device: {device}   backend: {backend}   mode: {mode}", flush=True)
    results: dict[str, Any] = {}
    for name in names:
        start = time.perf_counter()
        results.update(BENCHMARKS[name](SIZES[mode]))
        print(f"  {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    print(f"\n{'benchmark':42s} {'ratio':>8s}  details")
    for name, row in results.items():
        details = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in row.items()
            if k not in ("ratio", "baseline")
        )
        print(f"{name:42s} {row['ratio']:8.3f}  {details}")
    report = {
        "device": device,
        "backend": backend,
        "versions": versions(),
        "mode": mode,
        "command": "python benchmarks/run.py " + " ".join(argv or sys.argv[1:]),
        "results": results,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main()

"""Is KLAnnealingCallback free in ``model.fit``? A 784-512-784 MLP (batch 128, Adam) whose
loss reads a beta variable, fitted with the callback annealing beta, against the same fit
with a constant beta variable and no callback; under the JAX and the PyTorch backends.
Targets: ratio <= 1.02, and a fixed cost per ``fit`` under 20 ms."""

from __future__ import annotations

import os
import time
from typing import Any

from _harness import in_fresh_processes, interleaved, median, paired_ratio

NAME = "keras_callback"
BACKENDS = ("jax", "torch")
SIZES = {
    "full": {"processes": 3, "steps": 50, "repeats": 11},
    "quick": {"processes": 2, "steps": 20, "repeats": 9},
    "tiny": {"processes": 1, "steps": 2, "repeats": 2},
}
BATCH = 128
TRACES: list[str] = []  # one entry each time a loss is traced (JAX) or run (torch)


def make_model(keras: Any, backend: str) -> Any:
    """The MLP, with a beta variable of its own that its loss reads."""

    class MLP(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = keras.layers.Dense(512, activation="relu")
            self.out = keras.layers.Dense(784)
            self.beta = keras.Variable(1.0, trainable=False, name="beta")

        def call(self, x):
            return self.out(self.hidden(x))

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            if backend == "jax":
                TRACES.append("trace")  # Python runs here only when JAX traces the step
            ops = keras.ops
            return ops.mean(ops.square(y_pred - x)) + self.beta * ops.mean(ops.square(y_pred))

    keras.utils.set_random_seed(0)
    model = MLP()
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    return model


def worker(mode: str) -> dict[str, Any]:
    """Seconds per ``fit`` of ``steps`` steps (``"callback"``, ``"constant"``, and an A/A
    control ``"constant_copy"``), and of one step (``*_one_step``), one sample per kind per
    interleaved round; each model is fitted once before timing (tracing, compiling)."""
    backend = os.environ["KERAS_BACKEND"]
    if backend == "torch":
        import torch

        torch.set_num_threads(1)  # several threads on a few shared cores thrash
    import keras
    import numpy as np

    from kl_schedules import monotonic_schedule
    from kl_schedules.keras import KLAnnealingCallback

    size = SIZES[mode]
    steps = size["steps"]
    rng = np.random.default_rng(1)
    x_long = rng.random((steps * BATCH, 784), dtype=np.float32)
    x_one = x_long[:BATCH]
    models = {kind: make_model(keras, backend) for kind in ("callback", "constant", "copy")}
    # a warm-up of 4 runs' length: beta changes at every step of every timed fit
    schedule = monotonic_schedule(total_steps=4 * steps)

    def fit(kind: str, x: Any) -> None:
        model = models[kind]
        callbacks = [KLAnnealingCallback(model.beta, schedule)] if kind == "callback" else []
        model.fit(x, epochs=1, batch_size=BATCH, verbose=0, shuffle=False, callbacks=callbacks)

    for kind in models:  # trace and compile outside the timing
        fit(kind, x_one)
        fit(kind, x_long)
    traces_before = len(TRACES)

    cpu: dict[str, list[float]] = {}

    def timer(kind: str, x: Any, name: str) -> Any:
        def run() -> float:
            start, start_cpu = time.perf_counter(), time.process_time()
            fit(kind, x)
            cpu.setdefault(name, []).append(time.process_time() - start_cpu)
            return time.perf_counter() - start

        return run

    timers = {
        name: timer(kind, x, name)
        for name, kind, x in [
            ("callback", "callback", x_long),
            ("constant", "constant", x_long),
            ("constant_copy", "copy", x_long),
            ("callback_one_step", "callback", x_one),
            ("constant_one_step", "constant", x_one),
        ]
    }
    samples: dict[str, Any] = interleaved(timers, size["repeats"])
    samples.update({f"cpu_{name}": values for name, values in cpu.items()})
    samples["traces_while_timed"] = len(TRACES) - traces_before
    samples["final_beta"] = float(keras.ops.convert_to_numpy(models["callback"].beta.value))
    return samples


def run(mode: str) -> dict[str, Any]:
    """Per backend: the ratio of a ``steps``-step fit with the callback to the same fit
    without it (median over rounds of the paired ratio, then over fresh processes), and
    the fixed cost per fit: the median paired difference between one-step fits."""
    results = {}
    steps = SIZES[mode]["steps"]
    for backend in BACKENDS:
        previous = os.environ.get("KERAS_BACKEND")
        os.environ["KERAS_BACKEND"] = backend
        try:
            per_process = in_fresh_processes(NAME, mode, SIZES[mode]["processes"])
        finally:
            if previous is None:
                del os.environ["KERAS_BACKEND"]
            else:
                os.environ["KERAS_BACKEND"] = previous
        ratios = [paired_ratio(p, "callback", "constant") for p in per_process]
        controls = [paired_ratio(p, "constant_copy", "constant") for p in per_process]
        cpu_ratios = [paired_ratio(p, "cpu_callback", "cpu_constant") for p in per_process]
        cpu_controls = [paired_ratio(p, "cpu_constant_copy", "cpu_constant") for p in per_process]

        def fixed(p: dict[str, list[float]], prefix: str = "") -> float:
            ours, base = p[f"{prefix}callback_one_step"], p[f"{prefix}constant_one_step"]
            return median([a - b for a, b in zip(ours, base, strict=True)])

        results[f"{NAME}/{backend}"] = {
            "ratio": median(ratios),
            "baseline": f"same {steps}-step fit, constant beta variable, no callback",
            "aa_control_ratio": median(controls),
            "per_process_ratios": [round(r, 4) for r in ratios],
            "ms_per_fit": median([median(p["callback"]) for p in per_process]) * 1e3,
            "baseline_ms_per_fit": median([median(p["constant"]) for p in per_process]) * 1e3,
            "fixed_ms_per_fit": median([fixed(p) for p in per_process]) * 1e3,
            # process CPU time (all threads): steadier than wall time on shared cores
            "cpu_ratio": median(cpu_ratios),
            "cpu_aa_control_ratio": median(cpu_controls),
            "cpu_fixed_ms_per_fit": median([fixed(p, "cpu_") for p in per_process]) * 1e3,
            "traces_while_timed": int(sum(p["traces_while_timed"] for p in per_process)),
            "target": "<= 1.02, fixed < 20 ms",
        }
    return results

"""Keras 3 adapter: a callback that anneals a non-trainable beta variable during ``fit``,
and posterior-collapse monitoring as logged metrics (:class:`CollapseMetrics`,
:class:`CollapseMonitorCallback`).

Importing this module imports keras; ``import kl_schedules`` does not. The Keras internals
it needs live in :mod:`kl_schedules._keras_internals`.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

from kl_schedules._extras import requires_extra

with requires_extra("kl_schedules.keras", "Keras 3", "keras"):
    import keras
import jax
import jax.numpy as jnp
import numpy as np

from kl_schedules import _keras_internals as internals
from kl_schedules._annealer import Annealer
from kl_schedules._annealing import annealer_weight
from kl_schedules._backend import JAX_MATH, PY_MATH, float_dtype
from kl_schedules._describe import _final_value
from kl_schedules._schedules import schedule_values_from
from kl_schedules._validation import ArgumentTypeError, check_choice, check_count, check_real
from kl_schedules.diagnostics import CollapseMonitor

__all__ = ["CollapseMetrics", "CollapseMonitorCallback", "KLAnnealingCallback"]

_BLOCK = 4096  # schedule values computed per vectorised host call
_BATCH_END_IS_LAST = internals.batch_end_names_the_last_step()

_UNTRACKED = (
    "with the JAX backend a compiled train step sees only the model's own variables, and "
    "beta could not be attached to this model ({reason}). Create beta inside the model "
    "instead: `self.beta = keras.Variable(0.0, trainable=False)` in a subclassed model's "
    "__init__, or `model.beta = keras.Variable(0.0, trainable=False)` on a built "
    "Sequential or functional model; read it in the loss, and pass `model.beta` to "
    "KLAnnealingCallback"
)


def _traceable(schedule: Any) -> bool:
    """Whether ``schedule`` can run on a traced int32 step (else it is evaluated on the
    host, one Python call per step). A traceable schedule must return a scalar."""
    try:
        out = jax.eval_shape(schedule, jax.ShapeDtypeStruct((), jnp.int32))  # type: ignore[no-untyped-call]
    except Exception:  # a Python branch on the step, math.* on it, a host library, ...
        return False
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(
            f"schedule must map a step to a scalar beta, got an output of shape {shape} "
            f"from {schedule!r}"
        )
    return True


def _uncached_block(schedule: Any, index: int) -> np.ndarray:
    return schedule_values_from(schedule, index * _BLOCK, _BLOCK)


_cached_block = functools.lru_cache(maxsize=64)(_uncached_block)


def _block(schedule: Any, index: int) -> np.ndarray:
    """``schedule(t)`` for the ``_BLOCK`` steps of block ``index``, computed once per
    schedule (one vectorised call of a fixed shape: nothing new to compile)."""
    try:
        return _cached_block(schedule, index)
    except TypeError:  # an unhashable schedule
        return _uncached_block(schedule, index)


# schedule -> (first step at its final value, or None if not found before the second entry)
_FIRST_AT_FINAL: dict[Any, tuple[int | None, int]] = {}


def _first_step_at(schedule: Any, value: float, start: int, end: int) -> int | None:
    """The first step in ``[start, end)`` where ``schedule`` equals ``value``, if any."""
    for index in range(start // _BLOCK, (end - 1) // _BLOCK + 1):
        values = _block(schedule, index)
        hits = np.flatnonzero(values == values.dtype.type(value))
        hits = hits[(hits + index * _BLOCK >= start) & (hits + index * _BLOCK < end)]
        if len(hits):
            return index * _BLOCK + int(hits[0])
    return None


class _ScheduleBeta:
    """beta = ``schedule(optimizer iteration)``, or ``schedule(epoch)``."""

    def __init__(self, schedule: Any) -> None:
        self.schedule = schedule
        self.traceable = _traceable(schedule)
        self._block: tuple[int, np.ndarray] = (-1, np.empty(0))  # (index, values)
        self.key = ("schedule", schedule)

    def begin(self, iteration: int) -> None:
        """Start of a ``fit`` at optimizer iteration ``iteration``."""

    def end(self, iteration: int) -> None:
        """End of a ``fit`` at optimizer iteration ``iteration``."""

    def traced(self) -> Callable[[Any], Any]:
        """``iteration -> beta`` for the compiled step (a host callback when the schedule
        cannot be traced)."""
        if self.traceable:
            return self.schedule  # type: ignore[no-any-return]
        at, dtype = self.at, float_dtype()
        result = jax.ShapeDtypeStruct((), dtype)  # type: ignore[no-untyped-call]

        def on_host(iteration: Any) -> Any:
            return jax.pure_callback(lambda i: np.asarray(at(int(i)), dtype), result, iteration)

        return on_host

    def at(self, step: int) -> float:
        """The schedule's beta at ``step``, on the host (vectorised in blocks)."""
        if not self.traceable:
            return float(self.schedule(step))
        index, offset = divmod(step, _BLOCK)
        start, values = self._block
        if start != index:
            values = _block(self.schedule, index)
            self._block = (index, values)  # one assignment: batch ends may run in threads
        return float(values[offset])

    def epoch_value(self, epoch: int) -> float:
        return self.at(epoch)

    def epoch_end(self) -> None:
        pass

    def shortfall(self, now: int, end: int) -> str | None:
        """Why beta does not reach its final value before step ``end`` (``None`` if it
        does, or if that cannot be told cheaply)."""
        if not self.traceable or end < 1:
            return None
        final = _final_value(self.schedule)
        if final is None:  # not ours: its value at the end of the run
            final = self.at(end - 1)
            hit = _first_step_at(self.schedule, final, 0, end)
        else:  # ours: where it first reaches its final value is remembered
            hit, scanned = _FIRST_AT_FINAL.get(self.schedule, (None, 0))
            if hit is None and scanned < end:
                hit = _first_step_at(self.schedule, final, scanned, end)
                if len(_FIRST_AT_FINAL) > 256:
                    _FIRST_AT_FINAL.clear()
                _FIRST_AT_FINAL[self.schedule] = (hit, end)
        if hit is not None and hit < end:
            return None
        return f"{self.schedule!r} reaches its final value {final:g}"


class _AnnealerBeta:
    """beta from a host :class:`~kl_schedules.Annealer`: its weight at its step count,
    which advances once per optimizer step (``"batch"``) or per epoch (``"epoch"``)."""

    def __init__(self, annealer: Annealer) -> None:
        self.annealer = annealer
        self.traceable = True
        self._first_iteration = 0
        self._first_step = annealer.current_step
        self.key: tuple[Any, ...] = ()

    def begin(self, iteration: int) -> None:
        a = self.annealer
        self._first_iteration, self._first_step = iteration, a.current_step
        # The compiled step depends on the settings and on how the annealer's step relates
        # to the optimizer's iteration, so a resumed fit reuses it.
        if a.cyclical and a.current_step == a.total_steps:
            relation: tuple[Any, ...] = ("wrapping", iteration)
        else:
            relation = ("offset", a.current_step - iteration)
        self.key = (
            "annealer",
            a.total_steps,
            a.shape,
            a.baseline,
            a.cyclical,
            a.disable,
            *relation,
        )

    def _step_after(self, k: Any, xp_min: Any, xp_where: Any) -> Any:
        """The annealer's step after ``k`` steps from the start of this ``fit``."""
        a, s0 = self.annealer, self._first_step
        total = a.total_steps
        if not a.cyclical:
            return xp_min(s0 + k, total)
        base = s0 if s0 < total else total - 1  # from T, one step wraps to 0
        return xp_where(k == 0, s0, (base + k) % total)

    def traced(self) -> Callable[[Any], Any]:
        a, first = self.annealer, self._first_iteration
        if a.disable:
            return lambda iteration: jnp.float32(1.0)
        weight = annealer_weight(a.total_steps, a.shape, a.baseline, JAX_MATH)
        step_after = self._step_after
        return lambda iteration: weight(step_after(iteration - first, jnp.minimum, jnp.where))

    def at(self, iteration: int) -> float:
        a = self.annealer
        if a.disable:
            return 1.0
        k = iteration - self._first_iteration
        step = self._step_after(k, min, lambda c, x, y: x if c else y)
        return float(annealer_weight(a.total_steps, a.shape, a.baseline, PY_MATH)(step))

    def end(self, iteration: int) -> None:
        k = iteration - self._first_iteration
        self.annealer.current_step = self._step_after(k, min, lambda c, x, y: x if c else y)

    def epoch_value(self, epoch: int) -> float:
        return float(self.annealer.beta)

    def epoch_end(self) -> None:
        self.annealer.step()

    def shortfall(self, now: int, end: int) -> str | None:
        a = self.annealer
        needed = a.total_steps - a.current_step
        if a.cyclical or needed < end - now:
            return None
        return f"{a!r} reaches its final value 1 (it needs {needed} more steps)"


class _BetaHolder(keras.layers.Layer):
    """A weightless-looking layer that carries ``beta`` into a model's state during ``fit``.

    It is a child layer rather than a variable of the model itself, so a checkpoint written
    during ``fit`` still loads into a fresh model that has no such child.
    """

    def __init__(self, beta: keras.Variable) -> None:
        super().__init__(name="kl_schedules_beta", trainable=False)
        internals.track_variable(self, beta)
        self.built = True


def _tracks(model: Any, variable: Any) -> bool:
    return any(v is variable for v in model.non_trainable_variables)


def _iterations(model: Any) -> int:
    """The optimizer's iteration count, read on the host (a device-to-host copy)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations.value))


class _ScheduledTrainFunction:
    """The train function a ``fit`` with the callback runs: the scheduled one while that
    ``fit`` runs (Keras sets ``model.history`` anew for each ``fit``), the model's own
    otherwise, so a ``fit`` that raised before ``on_train_end`` leaves no schedule behind.

    ``made_from`` says what ``scheduled`` was built from; a later ``fit`` with the same
    model, beta, optimizer and an equal schedule reuses it rather than tracing again.
    """

    def __init__(self, model: Any, original: Any, scheduled: Any, made_from: tuple[Any, ...]):
        self.model, self.original, self.scheduled = model, original, scheduled
        self.made_from = made_from
        self.history = model.history

    def reuses(self, made_from: tuple[Any, ...]) -> bool:
        mine = self.made_from
        return all(a is b for a, b in zip(mine[:3], made_from[:3], strict=True)) and _same(
            mine[3], made_from[3]
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        function = self.scheduled if self.model.history is self.history else self.original
        return function(*args, **kwargs)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # a schedule with an unusual __eq__
        return a is b


def _scheduled_jax_step(
    model: Any, beta: Any, train_step: Callable[..., Any], schedule: Callable[[Any], Any]
) -> Callable[..., Any]:
    """``model``'s JAX ``train_step(state, data)``, with beta's entry of the state replaced
    by ``schedule(iteration)``, the optimizer's iteration count in that same state."""

    def step(state: Any, data: Any) -> Any:
        trainable, non_trainable, optimizer_variables, metrics = state
        beta_at = next((i for i, v in enumerate(model.non_trainable_variables) if v is beta), -1)
        counter = model.optimizer.iterations
        iteration_at = next(
            (i for i, v in enumerate(model.optimizer.variables) if v is counter), -1
        )
        if beta_at < 0:
            raise ValueError("KLAnnealingCallback: beta is not among the model's variables")
        if iteration_at < 0:
            raise ValueError(
                f"KLAnnealingCallback: the iteration counter of {type(model.optimizer).__name__} "
                f"is not among its variables"
            )
        value = jnp.asarray(schedule(optimizer_variables[iteration_at]))
        non_trainable = list(non_trainable)
        non_trainable[beta_at] = value.astype(non_trainable[beta_at].dtype)
        return train_step((trainable, non_trainable, optimizer_variables, metrics), data)

    return step


class KLAnnealingCallback(keras.callbacks.Callback):
    """Sets a non-trainable ``keras.Variable`` ``beta`` from a schedule during ``fit``.

    The loss must read ``beta`` (a variable), not a Python float: a float is frozen into
    the compiled train step. The variable may live inside the model or outside it (a
    module-level ``beta`` read by a loss function). With the JAX backend a compiled step
    sees only the model's own state, so for the duration of ``fit`` the callback attaches
    an outside ``beta`` to the model (as a small child layer, removed at the end of
    training). Outside ``fit`` the JAX backend reads an outside ``beta`` as a constant
    when it compiles, so to ``evaluate`` or ``predict`` with a value assigned later, pass
    this callback to that call too (it attaches beta for its duration) or create beta
    inside the model.

    With ``update="batch"`` the loss at optimizer step ``t`` (the optimizer's
    ``iterations`` before the step) sees ``beta = schedule(t)``, also with
    ``steps_per_execution > 1`` and in a resumed ``fit`` (a new callback,
    ``initial_epoch``, the same or a restored optimizer). With the JAX backend beta is
    computed inside the compiled step from the optimizer's counter, as Keras evaluates a
    learning-rate schedule (a schedule that cannot be traced runs on the host through
    ``jax.pure_callback``); with other backends it is assigned before each step. With
    ``update="epoch"`` the step is the epoch index. ``logs["beta"]`` holds the beta of
    the batch's last step at every batch end and the epoch's last at every epoch end.

    Args:
      beta: a non-trainable scalar floating ``keras.Variable`` that the loss multiplies
        the KL by.
      schedule: any ``step -> beta`` callable: an ``optax.Schedule`` (traced into the
        compiled step) or a plain Python function such as ``lambda s: min(1.0, s / 1000)``
        (evaluated on the host, once per step); or an :class:`~kl_schedules.Annealer`,
        stepped once per optimizer step (``"batch"``) or per epoch (``"epoch"``), which
        carries its own state: restore it with ``load_state_dict`` to resume.
      update: ``"batch"`` (step = optimizer iterations, the default) or ``"epoch"`` (step =
        epoch index).

    Examples:
      >>> import keras
      >>> from kl_schedules import monotonic_schedule
      >>> from kl_schedules.keras import KLAnnealingCallback
      >>> beta = keras.Variable(0.0, trainable=False, name="beta")
      >>> callback = KLAnnealingCallback(beta, monotonic_schedule(1000), update="batch")
    """

    # on_train_batch_end only writes logs["beta"], from its arguments: Keras may run it on
    # a worker thread instead of waiting for each step's results.
    async_safe = True

    def __init__(self, beta: keras.Variable, schedule: Any, update: str = "batch") -> None:
        super().__init__()
        if not isinstance(beta, keras.Variable):
            raise ArgumentTypeError(f"beta must be a keras.Variable, got {type(beta).__name__}")
        if beta.trainable:
            raise ValueError("beta must be a non-trainable keras.Variable (trainable=False)")
        if tuple(beta.shape) != ():
            raise ValueError(f"beta must be a scalar keras.Variable, got shape {beta.shape}")
        dtype = keras.backend.standardize_dtype(beta.dtype)
        if "float" not in dtype:
            raise ArgumentTypeError(
                f"beta must be a floating keras.Variable, got dtype {dtype} (the schedule's "
                f"values would be truncated); create it from a float: "
                f"keras.Variable(0.0, trainable=False)"
            )
        self.update = check_choice("update", update, ("batch", "epoch"))
        if not callable(schedule):
            raise ArgumentTypeError(
                f"schedule must be callable (step -> beta) or an Annealer, got "
                f"{type(schedule).__name__}"
            )
        self.beta = beta
        self.schedule = schedule
        self._source = (
            _AnnealerBeta(schedule) if isinstance(schedule, Annealer) else _ScheduleBeta(schedule)
        )
        self.step = 0
        self.last_beta = math.nan
        self._holder: _BetaHolder | None = None
        self._holder_owner: Any = None
        self._in_fit = False
        self._fit_checked = False
        self._fit_first_iteration = 0
        self._epoch_first_iteration = 0
        self._compiled = False
        self._restore_train_function: Any = None
        self._steps_per_execution = 1

    # ---- making the compiled step see beta ------------------------------------------------

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        # Called when fit, evaluate or predict starts (fit's own validation reuses its
        # callbacks without calling it), so no earlier fit is running, even one that raised.
        self._in_fit = False
        # fit calls this before it builds its train function: attach beta now.
        if keras.backend.backend() == "jax" and not _tracks(model, self.beta):
            self._attach(model)

    def _attach(self, model: Any) -> None:
        """Adds a holder of beta to the model's layer store or, where that does not reach
        the model's variables (a ``Sequential`` keeps its own list of layers), to the store
        of the first of its layers where it does."""
        owners = [model] + [
            layer
            for layer in internals.sublayers(model)
            if not isinstance(layer, keras.layers.InputLayer)
        ]
        reason = "it is still not among its variables"
        for owner in owners:
            holder = _BetaHolder(self.beta)
            try:
                internals.add_child_layer(owner, holder)
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                continue
            if _tracks(model, self.beta):
                self._holder, self._holder_owner = holder, owner
                return
            internals.remove_child_layer(owner, holder)
        raise ValueError(_UNTRACKED.format(reason=reason))

    def _detach(self) -> None:
        if self._holder is None:
            return
        internals.remove_child_layer(self._holder_owner, self._holder)
        self._holder = self._holder_owner = None

    def _compile_schedule_into_the_step(self, model: Any) -> None:
        """Makes this ``fit`` run a train function that computes beta from the optimizer's
        iteration count (built once per model, schedule and ``compile``)."""
        if internals.nnx_enabled():
            raise ValueError(
                "KLAnnealingCallback does not support Keras on Flax NNX (KERAS_NNX_ENABLED)"
            )
        current = model.train_function
        if isinstance(current, _ScheduledTrainFunction):  # left by a fit that raised
            current = current.original
        made_from = (current, self.beta, model.optimizer, self._source.key)
        previous = internals.last_scheduled_function(model)
        if isinstance(previous, _ScheduledTrainFunction) and previous.reuses(made_from):
            scheduled = previous.scheduled
        else:
            step = _scheduled_jax_step(model, self.beta, model.train_step, self._source.traced())
            scheduled = internals.build_train_function(model, step)
        function = _ScheduledTrainFunction(model, current, scheduled, made_from)
        internals.remember_scheduled_function(model, function)
        internals.set_train_function(model, function)
        self._restore_train_function = current
        self._compiled = True

    # ---- the schedule -------------------------------------------------------------------

    def value_at(self, step: int) -> float:
        """The schedule's beta at ``step`` on the host: the value the loss sees at that
        optimizer step (``"batch"``) or epoch (``"epoch"``)."""
        return self._source.at(step)

    def on_train_begin(self, logs: Any = None) -> None:
        self._in_fit = True
        model = self.model
        self._fit_first_iteration = self._epoch_first_iteration = _iterations(model)
        self._steps_per_execution = int(getattr(model, "steps_per_execution", 1) or 1)
        self.step = self._fit_first_iteration
        if self.update == "batch":
            self._source.begin(self._fit_first_iteration)
            if keras.backend.backend() == "jax":
                self._compile_schedule_into_the_step(model)

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if self.update == "batch" and not self._compiled:  # assigned before the step
            iteration = _iterations(self.model)
            self.beta.assign(self._source.at(iteration))

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if logs is None:
            return
        if self.update == "batch":  # the beta of this batch's (execution's) last step
            last = batch if _BATCH_END_IS_LAST else batch + self._steps_per_execution - 1
            steps = self.params.get("steps")  # a short last execution reports a later end
            last = min(last, steps - 1) if steps else last
            logs["beta"] = self._source.at(self._epoch_first_iteration + last)
        else:
            logs["beta"] = self.last_beta

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if not self._fit_checked:
            self._warn_if_the_run_is_too_short(epoch)
        if self.update == "epoch":
            self.step = epoch  # a schedule of the epoch index (initial_epoch respected)
            self.last_beta = self._source.epoch_value(epoch)
            _ = self.model  # with JAX, syncs the trainer's state so the assignment is seen
            self.beta.assign(self.last_beta)

    def _warn_if_the_run_is_too_short(self, epoch: int) -> None:
        """Warns (once per callback) when the schedule cannot reach its final value before
        this ``fit`` ends, e.g. a warm-up longer than training."""
        self._fit_checked = True
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        if not epochs or (self.update == "batch" and not steps):
            return  # the run's length is unknown
        remaining = (epochs - epoch) * (steps if self.update == "batch" else 1)
        now = self._epoch_first_iteration if self.update == "batch" else epoch
        unit = "optimizer steps" if self.update == "batch" else "epochs"
        what = self._source.shortfall(now, now + remaining)
        if what is not None:
            warnings.warn(
                f"KLAnnealingCallback: this fit ends after {now + remaining} {unit}, before {what}",
                UserWarning,
                stacklevel=2,
            )

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self.update == "epoch":
            self._source.epoch_end()
        else:
            iteration = _iterations(self.model)  # the state is synced at an epoch's end
            self._epoch_first_iteration = iteration  # the next epoch's first step
            if iteration > self._fit_first_iteration:
                self.step = iteration - 1
                self.last_beta = self._source.at(self.step)
        if logs is not None:
            logs["beta"] = self.last_beta

    def on_train_end(self, logs: Any = None) -> None:
        model = self.model
        if self.update == "batch":  # read where the last epoch ended
            self._source.end(self._epoch_first_iteration)
        if self._compiled:
            internals.set_train_function(model, self._restore_train_function)
            self._compiled, self._restore_train_function = False, None
        self._in_fit = False
        self._detach()

    def on_test_end(self, logs: Any = None) -> None:
        if not self._in_fit:  # passed to evaluate(): attached by set_model, until its end
            self._detach()

    def on_predict_end(self, logs: Any = None) -> None:
        self.on_test_end(logs)


# ---- posterior-collapse monitoring ------------------------------------------------------

_LOG_2PI = math.log(2.0 * math.pi)
_COLLAPSE_KEYS = ("kl", "active_units", "mutual_information")


class CollapseMetrics(keras.metrics.Metric):
    r"""KL, active units and mutual information of the posterior, as Keras metrics.

    Update it with each batch's posterior parameters in the model's ``compute_loss`` (or
    ``train_step``): ``self.collapse.update_state(mu, logvar)``. Keras then reports, like
    any metric, the running values over the epoch so far in ``logs``, the progress bar,
    ``History`` and ``CSVLogger`` (prefixed ``val_`` for validation), and resets them at
    each epoch's start. Over the rows :math:`i` seen this epoch:

    .. math::
        \text{kl} = \tfrac1N \sum_i KL(q(z|x_i) \| N(0, I)), \quad
        \text{active\_units} = \#\{j : \mathrm{Var}_i(\mu_{ij}) > \delta\}

    the same numbers as :func:`~kl_schedules.diagnostics.collapse_metrics` on all those
    rows at once (the variance is merged batch by batch, Chan et al.'s update, so it needs
    no store of rows). ``mutual_information`` is the mean over this epoch's batches of
    :func:`~kl_schedules.diagnostics.mutual_information` of each batch (one draw of z per
    row, from ``keras.random`` with the metric's own seed; each batch's estimate is at
    most :math:`\log` of its size). Written with ``keras.ops``: any backend.

    Args:
      latent_dim: the number of latent dimensions (the last axis of ``mu``).
      threshold: :math:`\delta` of active units (default 0.01).
      seed: seed of the draws of z for the mutual information (default 0).
      name: the metric's name (its results are logged as ``kl``, ``active_units`` and
        ``mutual_information`` whatever it is).

    Examples:
      >>> import numpy as np
      >>> from kl_schedules.keras import CollapseMetrics
      >>> metric = CollapseMetrics(latent_dim=2)
      >>> mu = np.stack([np.linspace(-1.0, 1.0, 64), np.zeros(64)], axis=1)
      >>> metric.update_state(mu, np.zeros_like(mu))
      >>> {k: round(float(v), 3) for k, v in metric.result().items() if k != "mutual_information"}
      {'kl': 0.172, 'active_units': 1.0}
    """

    def __init__(
        self,
        latent_dim: int,
        threshold: float = 0.01,
        seed: int = 0,
        name: str = "collapse_metrics",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.latent_dim = check_count("latent_dim", latent_dim, 1)
        self.threshold = check_real("threshold", threshold, 0.0)
        self.seed = check_count("seed", seed, 0, 2**32 - 1)
        self._seed_generator = keras.random.SeedGenerator(self.seed)
        scalar = {"shape": (), "initializer": "zeros", "dtype": self.dtype}
        vector = {"shape": (self.latent_dim,), "initializer": "zeros", "dtype": self.dtype}
        self.rows = self.add_variable(name="rows", **scalar)
        self.kl_sum = self.add_variable(name="kl_sum", **scalar)
        self.mean = self.add_variable(name="mean", **vector)
        self.m2 = self.add_variable(name="m2", **vector)  # sum of squared deviations
        self.batches = self.add_variable(name="batches", **scalar)
        self.mi_sum = self.add_variable(name="mi_sum", **scalar)

    @property
    def variables(self) -> list[Any]:
        # The seed generator's state is part of the metric's state, so a compiled (JAX)
        # step advances it rather than drawing the same z every step.
        return [*super().variables, self._seed_generator.state]

    def update_state(self, mu: Any, logvar: Any, sample_weight: Any = None) -> None:
        """Adds one batch: ``mu`` and ``logvar`` of shape ``[batch, latent_dim]``."""
        if sample_weight is not None:
            raise ValueError("CollapseMetrics does not take sample_weight (got one)")
        ops = keras.ops
        mu = ops.convert_to_tensor(mu, dtype=self.dtype)
        logvar = ops.convert_to_tensor(logvar, dtype=self.dtype)
        shape, other = tuple(mu.shape), tuple(logvar.shape)
        if len(shape) != 2 or shape[-1] != self.latent_dim or other != shape:
            raise ValueError(
                f"CollapseMetrics: mu and logvar must both have shape [batch, "
                f"{self.latent_dim}] (latent_dim={self.latent_dim}), got {shape} and {other}"
            )
        rows = ops.cast(ops.shape(mu)[0], self.dtype)
        kl = -0.5 * ops.sum(1.0 + logvar - ops.square(mu) - ops.exp(logvar), axis=-1)
        # Chan et al.: merge this batch's mean and squared deviations into the running ones
        before = self.rows.value
        total = before + rows
        batch_mean = ops.mean(mu, axis=0)
        batch_m2 = ops.sum(ops.square(mu - batch_mean), axis=0)
        delta = batch_mean - self.mean.value
        self.mean.assign(self.mean.value + delta * (rows / total))
        self.m2.assign(self.m2.value + batch_m2 + ops.square(delta) * (before * rows / total))
        self.rows.assign(total)
        self.kl_sum.assign(self.kl_sum.value + ops.sum(kl))
        noise = keras.random.normal(ops.shape(mu), dtype=self.dtype, seed=self._seed_generator)
        self.mi_sum.assign(self.mi_sum.value + _mutual_information(mu, logvar, noise))
        self.batches.assign(self.batches.value + 1.0)

    def result(self) -> dict[str, Any]:
        """``{"kl", "active_units", "mutual_information"}`` over the epoch so far (0 before
        the first update)."""
        ops = keras.ops
        variance = ops.divide_no_nan(self.m2.value, self.rows.value)
        return {
            "kl": ops.divide_no_nan(self.kl_sum.value, self.rows.value),
            "active_units": ops.sum(ops.cast(variance > self.threshold, self.dtype)),
            "mutual_information": ops.divide_no_nan(self.mi_sum.value, self.batches.value),
        }

    def reset_state(self) -> None:
        for variable in super().variables:  # not the seed: new draws every epoch
            variable.assign(keras.ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "threshold": self.threshold,
            "seed": self.seed,
        }


def _mutual_information(mu: Any, logvar: Any, noise: Any) -> Any:
    """:func:`kl_schedules.diagnostics.mutual_information` with ``z = mu + sigma * noise``,
    in ``keras.ops``: :math:`\\log q(z_i|x_j)` by three matrix products, then the mean of
    the own term minus the log of the batch's mixture."""
    ops = keras.ops
    z = mu + ops.exp(0.5 * logvar) * noise
    inverse_var = ops.exp(-logvar)
    scaled_mu = mu * inverse_var
    squared = (
        ops.matmul(z * z, ops.transpose(inverse_var))
        - 2.0 * ops.matmul(z, ops.transpose(scaled_mu))
        + ops.sum(mu * scaled_mu, axis=-1)[None, :]
    )
    latent = mu.shape[-1]
    log_density = -0.5 * (squared + ops.sum(logvar, axis=-1)[None, :] + latent * _LOG_2PI)
    rows = ops.cast(ops.shape(mu)[0], log_density.dtype)
    own = ops.diagonal(log_density)
    return ops.mean(own - ops.logsumexp(log_density, axis=1)) + ops.log(rows)


class CollapseMonitorCallback(keras.callbacks.Callback):
    """Warns once (a :class:`~kl_schedules.diagnostics.PosteriorCollapseWarning`) when the
    logged :class:`CollapseMetrics` say the latent is unused.

    At every epoch end it reads ``logs["kl"]`` and ``logs["active_units"]`` (the epoch's
    values) and judges them with a :class:`~kl_schedules.diagnostics.CollapseMonitor`'s
    rules: unused when KL < ``kl_threshold`` and active units <= ``max_active_units``;
    after ``patience`` unused epochs in a row it warns once, naming the optimizer step and,
    if the latent was in use before, when that stopped. ``patience`` here counts epochs.

    Args:
      monitor: a :class:`~kl_schedules.diagnostics.CollapseMonitor` whose settings and
        state to use (its ``collapsed`` and ``collapse_step`` are kept up to date); or
        None to make one from ``settings``.
      **settings: :class:`~kl_schedules.diagnostics.CollapseConfig` fields (not together
        with ``monitor``); ``patience`` defaults to 3 epochs here. The active-unit
        threshold is the :class:`CollapseMetrics`' own ``threshold``.

    Examples:
      >>> from kl_schedules.keras import CollapseMonitorCallback
      >>> callback = CollapseMonitorCallback(patience=2)
      >>> callback.monitor.config.patience, callback.monitor.collapsed
      (2, False)
    """

    def __init__(self, monitor: CollapseMonitor | None = None, **settings: Any) -> None:
        super().__init__()
        if monitor is not None and settings:
            raise TypeError(
                f"give either monitor or CollapseConfig fields as keywords, not both (got "
                f"{sorted(settings)})"
            )
        if monitor is None:
            monitor = CollapseMonitor(**{"patience": 3, **settings})
        elif not isinstance(monitor, CollapseMonitor):
            raise ArgumentTypeError(
                f"monitor must be a kl_schedules.diagnostics.CollapseMonitor, got "
                f"{type(monitor).__name__}"
            )
        self.monitor = monitor

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = logs or {}
        missing = [key for key in _COLLAPSE_KEYS if key not in logs]
        if missing:
            raise KeyError(
                f"CollapseMonitorCallback: logs hold no {missing}; give the model a "
                f"kl_schedules.keras.CollapseMetrics and update it in compute_loss with "
                f"(mu, logvar)"
            )
        metrics = {key: float(logs[key]) for key in _COLLAPSE_KEYS}
        step = _iterations(self.model) if self.model.optimizer is not None else epoch
        if step >= self.monitor.config.start_step:
            # the monitor's own rules and message, fed the epoch's logged values instead of
            # a window of rows (the metric pooled the epoch's rows already)
            self.monitor._judge(step, metrics)

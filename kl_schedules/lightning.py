"""PyTorch Lightning adapter: a callback that sets a LightningModule's beta from a schedule.

Importing this module imports ``lightning``; ``import kl_schedules`` does not.
"""

from __future__ import annotations

import importlib
import inspect
import math
import warnings
from collections.abc import Mapping
from typing import Any

from kl_schedules._extras import requires_extra

with requires_extra("kl_schedules.lightning", "PyTorch Lightning", "lightning"):
    import lightning.pytorch as pl
    import torch
import numpy as np

from kl_schedules._annealer import Annealer
from kl_schedules._describe import describe
from kl_schedules._schedules import schedule_values_from
from kl_schedules._validation import ArgumentTypeError, check_choice, check_measurement
from kl_schedules.control import GECO, PIController

__all__ = ["KLAnnealingCallback"]

_BLOCK = 4096  # schedule values computed per vectorised call
_STATE_KEYS = ("kind", "update", "schedule", "state", "position", "pending", "monitor")


def _check_key(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ArgumentTypeError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _kind(schedule: Any) -> str:
    if isinstance(schedule, Annealer):
        return "annealer"
    if isinstance(schedule, (PIController, GECO)):
        return "controller"
    if callable(schedule):
        return "schedule"
    raise ArgumentTypeError(
        f"schedule must be a schedule (callable step -> beta), an Annealer, a PIController "
        f"or a GECO, got {type(schedule).__name__}"
    )


class KLAnnealingCallback(pl.Callback):
    r"""Sets ``pl_module.<attribute>`` to beta before every training batch, from a schedule.

    With ``update="batch"`` beta is the schedule at the optimizer step,
    :math:`\beta = s(\text{trainer.global\_step})`, so with ``accumulate_grad_batches=k``
    it is constant over the ``k`` micro-batches of one step; with ``update="epoch"`` it is
    :math:`s(\text{trainer.current\_epoch})`. If the module holds a tensor under that name
    (a registered buffer, say), it is written in place (``fill_``), so a ``torch.compile``\ d
    module never recompiles as beta changes; otherwise a float is set. The module must
    define the attribute (``self.beta = 0.0`` or ``self.register_buffer("beta",
    torch.tensor(0.0))`` in ``__init__``), so a misspelt name is an error, not a silent no-op;
    a module passed to ``fit`` compiled (``torch.compile(module)``) must hold a tensor, as
    compiled code reads a float attribute as a constant.
    beta is logged under the attribute's name every step (``trainer.callback_metrics`` and
    the loggers, at their ``log_every_n_steps``).

    ``schedule`` may be

    - any schedule (``step -> beta``, e.g. :func:`kl_schedules.monotonic_schedule`;
      evaluated on the host in vectorised blocks of 4096 steps, no JAX call per batch);
    - an :class:`~kl_schedules.Annealer`, stepped once per optimizer step (or epoch);
    - a :class:`~kl_schedules.control.PIController` fed ``outputs[kl_key]`` or a
      :class:`~kl_schedules.control.GECO` fed ``outputs[recon_key]``, from the dict that
      ``training_step`` returns: the values of the micro-batches of one optimizer step (or
      of one epoch) are averaged, over all processes under DDP, and fed once, after the
      optimizer step; beta for the next step is the controller's new beta.

    The callback's state (the position of an Annealer or the state of a controller, and
    what it has seen) is saved in Lightning checkpoints under :attr:`state_key`, so a fit
    resumed with ``ckpt_path`` and a fresh callback continues the schedule exactly. It warns
    once when the fit ends (``max_steps`` / ``max_epochs``) before the schedule reaches its
    final value.

    Collapse monitoring (optional): give ``monitor``, an object whose ``update(mu, logvar)``
    returns a dict of scalar metrics (e.g. :class:`kl_schedules.diagnostics.CollapseMonitor`;
    ``monitor=True`` makes one with its defaults). After every batch it is fed the detached
    ``outputs[mu_key]`` and ``outputs[logvar_key]`` (override :meth:`collapse_inputs` to find
    them elsewhere), and ``step=trainer.global_step`` if its ``update`` takes a ``step``; each
    scalar metric it returns is logged under its name. A monitor with ``state_dict``
    and ``load_state_dict`` is checkpointed with the callback.

    Args:
      schedule: a schedule, an ``Annealer``, a ``PIController`` or a ``GECO`` (above).
      attribute: the name of the module's beta attribute (a float or a tensor).
      update: ``"batch"`` (step = ``trainer.global_step``, the default) or ``"epoch"``
        (step = ``trainer.current_epoch``).
      kl_key: the key of the batch KL in ``training_step``'s dict, for a ``PIController``.
      recon_key: the key of the reconstruction error, for a ``GECO``.
      monitor: ``None`` (no monitoring), a monitor object, or ``True``.
      mu_key: the key of the posterior means (``[batch, latent]``) fed to ``monitor``.
      logvar_key: the key of the posterior log-variances fed to ``monitor``.

    Examples:
      >>> from kl_schedules import monotonic_schedule
      >>> from kl_schedules.lightning import KLAnnealingCallback
      >>> callback = KLAnnealingCallback(monotonic_schedule(1000))
      >>> callback.state_key
      "KLAnnealingCallback{'attribute': 'beta'}"
      >>> callback.value_at(250)
      0.25
    """

    def __init__(
        self,
        schedule: Any,
        attribute: str = "beta",
        update: str = "batch",
        kl_key: str = "kl",
        *,
        recon_key: str = "recon",
        monitor: Any = None,
        mu_key: str = "mu",
        logvar_key: str = "logvar",
    ) -> None:
        super().__init__()
        self.kind = _kind(schedule)
        if not isinstance(attribute, str) or not attribute.isidentifier():
            raise ArgumentTypeError(
                f"attribute must be the name of an attribute (an identifier), got {attribute!r}"
            )
        self.update = check_choice("update", update, ("batch", "epoch"))
        self.kl_key = _check_key("kl_key", kl_key)
        self.recon_key = _check_key("recon_key", recon_key)
        self.mu_key = _check_key("mu_key", mu_key)
        self.logvar_key = _check_key("logvar_key", logvar_key)
        if monitor is True:
            diagnostics = importlib.import_module("kl_schedules.diagnostics")
            monitor = diagnostics.CollapseMonitor()
        if (
            monitor is not None
            and monitor is not False
            and not callable(getattr(monitor, "update", None))
        ):
            raise ArgumentTypeError(
                f"monitor must be None, True or an object with update(mu, logvar), got "
                f"{type(monitor).__name__}"
            )
        self.schedule = schedule
        self.attribute = attribute
        self.monitor: Any = monitor or None
        self._monitor_takes_step = _takes_step(self.monitor)
        self.last_beta = math.nan
        self._position: int | None = None  # the step (or epoch) the schedule's state is at
        self._pending = [0.0, 0]  # sum and count of measurements not yet fed to a controller
        self._checked = False
        self._step_of_batch = 0
        self._block_start = -1
        self._block = np.empty(0)

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint (unique per ``attribute``)."""
        return self._generate_state_key(attribute=self.attribute)

    # ---- the schedule -------------------------------------------------------------------

    def value_at(self, step: int) -> float:
        """beta at ``step``: the schedule's value there (from a cached block), or the
        current beta of an ``Annealer`` or a controller."""
        if self.kind != "schedule":
            return float(self.schedule.beta)
        offset = step - self._block_start
        if self._block_start < 0 or not 0 <= offset < len(self._block):
            self._block_start = step
            self._block = schedule_values_from(self.schedule, step, _BLOCK)
            offset = 0
        return float(self._block[offset])

    def _now(self, trainer: pl.Trainer) -> int:
        return int(trainer.global_step if self.update == "batch" else trainer.current_epoch)

    def _follow(self, trainer: pl.Trainer) -> int:
        """The trainer's step (or epoch); an Annealer is stepped to match it."""
        now = self._now(trainer)
        if self._position is None:
            self._position = now
        elif self.kind == "annealer":
            for _ in range(now - self._position):
                self.schedule.step()
            self._position = max(self._position, now)
        return now

    def _set(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        beta = self.value_at(self._follow(trainer))
        current = getattr(pl_module, self.attribute)
        if isinstance(current, torch.Tensor):
            with torch.no_grad():
                current.fill_(beta)
        else:
            setattr(pl_module, self.attribute, beta)
        self.last_beta = beta

    # ---- Lightning hooks ----------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check_attribute(pl_module)
        if self._position is None and self.kind != "schedule" and trainer.ckpt_path:
            warnings.warn(
                f"KLAnnealingCallback: resuming from {trainer.ckpt_path}, which holds no state "
                f"for {self.state_key}; {self.schedule!r} continues from its own state at "
                f"step {self._now(trainer)}, not from where the checkpointed run was",
                UserWarning,
                stacklevel=2,
            )
        self._follow(trainer)
        if not self._checked:
            self._checked = True
            self._warn_if_the_run_is_too_short(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.update == "epoch":
            self._set(trainer, pl_module)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step_of_batch = trainer.global_step
        if self.update == "batch":
            self._set(trainer, pl_module)
        pl_module.log(self.attribute, self.last_beta, on_step=True, on_epoch=False)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.kind == "controller":
            key = self.kl_key if isinstance(self.schedule, PIController) else self.recon_key
            value = _output(outputs, key, type(self.schedule).__name__)
            self._pending[0] += check_measurement(f"outputs[{key!r}]", _detached(value))
            self._pending[1] += 1
            if self.update == "batch" and trainer.global_step > (self._position or 0):
                self._feed(trainer, pl_module)
                self._position = trainer.global_step
        if self.monitor is not None:
            inputs = self.collapse_inputs(outputs)
            if inputs is not None:
                self._monitor(trainer, pl_module, *inputs)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.update == "epoch" and self.kind == "controller" and self._pending[1]:
            self._feed(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._follow(trainer)  # an Annealer takes the last optimizer step (or epoch) too

    # ---- controllers and monitoring -----------------------------------------------------

    def _feed(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Feeds the mean of the pending measurements (over all processes) to the controller."""
        total, count = self._pending
        if trainer.world_size > 1:
            dtype = torch.float32 if pl_module.device.type == "mps" else torch.float64
            both = torch.tensor([total, count], dtype=dtype, device=pl_module.device)
            both = trainer.strategy.reduce(both, reduce_op="sum")
            total, count = float(both[0]), int(both[1])
        self._pending = [0.0, 0]
        self.schedule.update(total / count)

    def collapse_inputs(self, outputs: Any) -> tuple[Any, Any] | None:
        """The ``(mu, logvar)`` fed to ``monitor`` after a batch, from ``training_step``'s
        outputs; override it to take them from elsewhere (return ``None`` to skip a batch).

        Args:
          outputs: what ``training_step`` returned (Lightning's dict).

        Returns:
          ``(outputs[mu_key], outputs[logvar_key])`` (the callback detaches tensors).
        """
        return _output(outputs, self.mu_key, "monitor"), _output(
            outputs, self.logvar_key, "monitor"
        )

    def _monitor(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, mu: Any, logvar: Any
    ) -> None:
        mu, logvar = _detached(mu), _detached(logvar)
        if self._monitor_takes_step:  # the step of the batch, for the monitor's messages
            metrics = self.monitor.update(mu, logvar, step=self._step_of_batch)
        else:
            metrics = self.monitor.update(mu, logvar)
        if not metrics:
            return
        if not isinstance(metrics, Mapping):
            raise ArgumentTypeError(
                f"monitor.update(mu, logvar) must return a dict of metrics or None, got "
                f"{type(metrics).__name__}"
            )
        for name, value in metrics.items():
            if _is_scalar(value):
                pl_module.log(name, float(value), on_step=True, on_epoch=False)

    # ---- checks -------------------------------------------------------------------------

    def _check_attribute(self, pl_module: pl.LightningModule) -> None:
        if not hasattr(pl_module, self.attribute):
            raise ValueError(
                f"KLAnnealingCallback: {type(pl_module).__name__} has no attribute "
                f"{self.attribute!r}; define it in __init__ (self.{self.attribute} = 0.0, or "
                f'self.register_buffer("{self.attribute}", torch.tensor(0.0)) for a compiled '
                f"module) and read it in training_step"
            )
        current = getattr(pl_module, self.attribute)
        if isinstance(current, torch.Tensor):
            if current.numel() != 1 or current.requires_grad or not current.is_floating_point():
                raise ValueError(
                    f"KLAnnealingCallback: {self.attribute} must be a float or a one-element "
                    f"floating-point tensor that does not require grad, got a tensor of shape "
                    f"{tuple(current.shape)}, dtype {current.dtype}, requires_grad="
                    f"{current.requires_grad}"
                )
        elif not isinstance(current, (float, int)) or isinstance(current, bool):
            raise ArgumentTypeError(
                f"KLAnnealingCallback: {self.attribute} must be a float or a tensor, got "
                f"{type(current).__name__}"
            )
        elif getattr(pl_module, "_compiler_ctx", None) is not None:
            raise ValueError(
                f"KLAnnealingCallback: {type(pl_module).__name__} was compiled "
                f"(torch.compile) and its {self.attribute} is a float, which compiled code "
                f"reads as a constant; hold beta in a buffer instead: "
                f'self.register_buffer("{self.attribute}", torch.tensor(0.0)) in __init__'
            )

    def _warn_if_the_run_is_too_short(self, trainer: pl.Trainer) -> None:
        """Warns when the fit ends before the schedule reaches its final value (e.g. a
        warm-up longer than training). Controllers have no final value."""
        if self.kind == "controller":
            return
        end: float | None
        if self.update == "batch":
            end, unit = trainer.estimated_stepping_batches, "optimizer steps"
        else:
            end, unit = trainer.max_epochs, "epochs"
            if trainer.max_steps is not None and trainer.max_steps >= 0:
                batches = trainer.num_training_batches
                if batches not in (0, math.inf):
                    per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
                    by_steps = math.ceil(trainer.max_steps / per_epoch)
                    end = by_steps if end is None or end < 0 else min(end, by_steps)
        if end is None or end < 0 or end == math.inf:
            return  # the run's length is unknown
        end = int(end)
        now = self._now(trainer)
        if end <= now:
            return
        if self.kind == "annealer":
            needed = self.schedule.total_steps - self.schedule.current_step
            short = not self.schedule.cyclical and needed >= end - now
            what = f"{self.schedule!r} reaches its final value 1 (it needs {needed} more steps)"
        else:
            summary = describe(self.schedule, end)
            short = not summary.reaches_final
            what = f"{self.schedule!r} reaches its final value {summary.final_value:g}"
        if short:
            warnings.warn(
                f"KLAnnealingCallback: this fit ends after {end} {unit}, before {what}",
                UserWarning,
                stacklevel=2,
            )

    # ---- checkpoints --------------------------------------------------------------------

    def _schedule_config(self) -> Any:
        to_dict = getattr(self.schedule, "to_dict", None)
        return to_dict() if self.kind == "schedule" and callable(to_dict) else None

    def state_dict(self) -> dict[str, Any]:
        """The callback's state as plain data (saved in Lightning checkpoints): the kind of
        schedule, ``update``, the schedule's settings (a kl_schedules schedule) or the
        state of an Annealer or controller, the step it is at, unfed measurements, and the
        monitor's state."""
        state_dict = getattr(self.monitor, "state_dict", None)
        return {
            "kind": self.kind,
            "update": self.update,
            "schedule": self._schedule_config(),
            "state": None if self.kind == "schedule" else self.schedule.state_dict(),
            "position": self._position,
            "pending": list(self._pending),
            "monitor": state_dict() if callable(state_dict) else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`; a state saved with another kind of schedule,
        another ``update`` or another schedule's settings raises, naming them."""
        missing = [key for key in _STATE_KEYS if key not in state_dict]
        if missing:
            raise ValueError(f"KLAnnealingCallback state: missing keys {missing}")
        for name, mine in (
            ("kind", self.kind),
            ("update", self.update),
            ("schedule", self._schedule_config()),
        ):
            if state_dict[name] != mine:
                raise ValueError(
                    f"KLAnnealingCallback: the checkpoint was saved with {name}="
                    f"{state_dict[name]!r}, this callback has {name}={mine!r}"
                )
        if self.kind != "schedule":
            self.schedule.load_state_dict(state_dict["state"])
        if state_dict["monitor"] is not None and hasattr(self.monitor, "load_state_dict"):
            self.monitor.load_state_dict(state_dict["monitor"])
        self._position = state_dict["position"]
        self._pending = [float(state_dict["pending"][0]), int(state_dict["pending"][1])]

    def __repr__(self) -> str:
        return (
            f"KLAnnealingCallback({self.schedule!r}, attribute={self.attribute!r}, "
            f"update={self.update!r})"
        )


def _output(outputs: Any, key: str, who: str) -> Any:
    if not isinstance(outputs, Mapping) or key not in outputs:
        got = list(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
        raise KeyError(
            f"KLAnnealingCallback with a {who} needs training_step to return a dict with "
            f"{key!r} (e.g. return {{'loss': loss, {key!r}: ...}}), got {got}"
        )
    return outputs[key]


def _takes_step(monitor: Any) -> bool:
    """Whether ``monitor.update`` accepts a ``step`` keyword (CollapseMonitor's does)."""
    if monitor is None:
        return False
    try:
        return "step" in inspect.signature(monitor.update).parameters
    except (TypeError, ValueError):  # no signature (a builtin): do not pass it
        return False


def _detached(value: Any) -> Any:
    return value.detach() if isinstance(value, torch.Tensor) else value


def _is_scalar(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float, np.number)):
        return True
    return getattr(value, "ndim", None) == 0 or getattr(value, "shape", None) == ()

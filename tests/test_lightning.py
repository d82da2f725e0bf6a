"""KLAnnealingCallback in real ``Trainer.fit`` runs, the way users write them.

Every test reads the beta that ``training_step`` actually used (the module records it per
batch), and compares it with a closed form or with an independent host object fed the same
measurements. Resuming runs in fresh processes; DDP runs two CPU processes (gloo).
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from kl_schedules import Annealer, monotonic_schedule  # noqa: E402
from kl_schedules.control import GECO, PIController  # noqa: E402
from kl_schedules.lightning import KLAnnealingCallback  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*"),
    pytest.mark.filterwarnings("ignore:.*litlogger.*"),
    # short test runs end before most schedules do; the warning's own tests record it
    pytest.mark.filterwarnings("ignore:KLAnnealingCallback. this fit ends"),
]

ROOT = Path(__file__).resolve().parents[1]
ROWS, DIM, LATENT, BATCH = 32, 4, 2, 4  # 8 batches per epoch


class TinyVAE(pl.LightningModule):
    """A deterministic VAE-shaped module (z = mu) that records, per batch, the beta its loss
    used (read from the step's outputs, so from the compiled graph when compiled)."""

    def __init__(self, buffer: bool = False, repeated: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Linear(DIM, 2 * LATENT)
        self.dec = nn.Linear(LATENT, DIM)
        if buffer:
            self.register_buffer("beta", torch.tensor(0.0))
        else:
            self.beta = 0.0
        self.seen: list[tuple[int, float]] = []  # (global_step, beta used)
        self.kls: list[float] = []
        self.recons: list[float] = []

    def forward(self, x):  # what torch.compile(module) compiles: it reads self.beta
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        recon = ((self.dec(mu) - x) ** 2).sum(-1).mean()
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)).mean()
        loss = recon + self.beta * kl
        used = self.beta * 1.0  # the beta this (possibly compiled) step multiplied by
        return {"loss": loss, "kl": kl, "recon": recon, "mu": mu, "logvar": logvar, "used": used}

    def training_step(self, batch, batch_idx):
        return self(batch[0])

    def on_train_batch_start(self, batch, batch_idx):  # runs after the callbacks' hooks
        self.step_now = self.global_step

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.seen.append((self.step_now, float(outputs["used"])))
        self.kls.append(float(outputs["kl"].detach()))
        self.recons.append(float(outputs["recon"].detach()))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def loader(repeated: bool = False, rank: int = 0) -> DataLoader:
    """32 rows of 4; ``repeated``: the same 4 rows 8 times, so every batch is identical (a
    resumed epoch then sees the batches the uninterrupted run saw)."""
    generator = torch.Generator().manual_seed(1 + rank)
    rows = torch.randn(BATCH if repeated else ROWS, DIM, generator=generator)
    if repeated:
        rows = rows.repeat(ROWS // BATCH, 1)
    return DataLoader(TensorDataset(rows), batch_size=BATCH)


def trainer(tmp_path, callbacks, **kwargs) -> pl.Trainer:
    options = dict(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=str(tmp_path),
    )
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


def fit(tmp_path, callback, module=None, **kwargs):
    module = module or TinyVAE()
    run = trainer(tmp_path, [callback], **kwargs)
    run.fit(module, loader())
    return module, run


def linear(total):
    return lambda step: min(step, total) / total


# ---- beta at the optimizer step -------------------------------------------------------------


def test_beta_is_the_schedule_at_global_step(tmp_path):
    module, run = fit(tmp_path, KLAnnealingCallback(monotonic_schedule(10)), max_steps=14)
    assert module.seen == [(s, pytest.approx(linear(10)(s))) for s in range(14)]
    assert float(run.callback_metrics["beta"]) == pytest.approx(1.0)


def test_accumulated_micro_batches_share_the_beta_of_their_step(tmp_path):
    callback = KLAnnealingCallback(monotonic_schedule(4))
    module, _ = fit(tmp_path, callback, max_steps=6, accumulate_grad_batches=3)
    betas = [beta for _, beta in module.seen]
    # 8 batches per epoch: steps of 3, 3 and 2 micro-batches (Lightning steps at epoch end)
    per_batch = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5]
    assert betas == [pytest.approx(linear(4)(s)) for s in per_batch]


def test_update_epoch_uses_the_epoch_index(tmp_path):
    callback = KLAnnealingCallback(monotonic_schedule(2), update="epoch")
    module, _ = fit(tmp_path, callback, max_epochs=3)
    betas = [beta for _, beta in module.seen]
    assert betas == [pytest.approx(e / 2 if e < 2 else 1.0) for e in range(3) for _ in range(8)]


def test_a_buffer_is_written_in_place(tmp_path):
    module = TinyVAE(buffer=True)
    buffer = module.beta
    fit(tmp_path, KLAnnealingCallback(monotonic_schedule(10)), module, max_steps=5)
    assert module.beta is buffer  # the same tensor object: compiled code keeps its input
    assert float(buffer) == pytest.approx(0.4)
    assert [b for _, b in module.seen] == [pytest.approx(s / 10) for s in range(5)]


def test_a_float_attribute_stays_a_float(tmp_path):
    module, _ = fit(tmp_path, KLAnnealingCallback(monotonic_schedule(10)), max_steps=3)
    assert type(module.beta) is float


def test_beta_reaches_the_logger_every_step(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    callback = KLAnnealingCallback(monotonic_schedule(10))
    logger = CSVLogger(str(tmp_path), name="run")
    fit(tmp_path, callback, max_steps=6, logger=logger, log_every_n_steps=1)
    with open(Path(logger.log_dir, "metrics.csv")) as file:
        rows = list(csv.DictReader(file))
    assert [float(r["beta"]) for r in rows] == [pytest.approx(s / 10) for s in range(6)]


# ---- Annealer and controllers -----------------------------------------------------------------


def test_an_annealer_steps_once_per_optimizer_step(tmp_path):
    annealer = Annealer(total_steps=5)
    callback = KLAnnealingCallback(annealer)
    module, _ = fit(tmp_path, callback, max_steps=5, accumulate_grad_batches=2)
    betas = [beta for _, beta in module.seen]
    assert betas == [pytest.approx(s / 5) for s in range(5) for _ in range(2)]
    assert annealer.current_step == 5  # stepped for the last optimizer step too


def test_an_annealer_on_epochs(tmp_path):
    annealer = Annealer(total_steps=4)
    module, _ = fit(tmp_path, KLAnnealingCallback(annealer, update="epoch"), max_epochs=2)
    assert [b for _, b in module.seen] == [0.0] * 8 + [0.25] * 8
    assert annealer.current_step == 2


def test_a_pi_controller_is_fed_the_mean_kl_of_each_optimizer_step(tmp_path):
    settings = dict(target_kl=0.3, k_p=0.5, k_i=0.05)
    callback = KLAnnealingCallback(PIController(**settings))
    module, _ = fit(tmp_path, callback, max_steps=5, accumulate_grad_batches=2)
    reference, expected = PIController(**settings), []
    for step in range(5):
        expected += [reference.beta] * 2
        reference.update(sum(module.kls[2 * step : 2 * step + 2]) / 2)
    assert [b for _, b in module.seen] == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) > 2  # beta moved
    assert callback.schedule.beta == pytest.approx(reference.beta, rel=1e-12)


def test_geco_is_fed_the_reconstruction_error(tmp_path):
    callback = KLAnnealingCallback(GECO(goal=1.0, step_size=0.5))
    module, _ = fit(tmp_path, callback, max_steps=4)
    reference, expected = GECO(goal=1.0, step_size=0.5), []
    for recon in module.recons:
        expected.append(reference.beta)
        reference.update(recon)
    assert [b for _, b in module.seen] == pytest.approx(expected, rel=1e-12)


def test_a_controller_without_its_key_says_what_is_missing(tmp_path):
    class NoKL(TinyVAE):
        def training_step(self, batch, batch_idx):
            return {"loss": super().training_step(batch, batch_idx)["loss"]}

        def on_train_batch_end(self, outputs, batch, batch_idx):
            pass

    with pytest.raises(KeyError, match=r"'kl'.*got \['loss'\]"):
        fit(tmp_path, KLAnnealingCallback(PIController(target_kl=1.0)), NoKL(), max_steps=2)


# ---- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(schedule=3.0), TypeError, "schedule must be"),
        (dict(update="step"), ValueError, "update must be one of"),
        (dict(attribute="not a name"), TypeError, "attribute must be"),
        (dict(attribute=1), TypeError, "attribute must be"),
        (dict(kl_key=""), TypeError, "kl_key must be"),
        (dict(recon_key=None), TypeError, "recon_key must be"),
        (dict(monitor=object()), TypeError, "monitor must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    kwargs.setdefault("schedule", monotonic_schedule(10))
    with pytest.raises(error, match=match):
        KLAnnealingCallback(**kwargs)


def test_a_misspelt_attribute_is_an_error(tmp_path):
    callback = KLAnnealingCallback(monotonic_schedule(10), attribute="betta")
    with pytest.raises(ValueError, match="has no attribute 'betta'"):
        fit(tmp_path, callback, max_steps=1)


def test_a_trainable_or_wide_tensor_is_an_error(tmp_path):
    module = TinyVAE()
    module.beta = nn.Parameter(torch.tensor(0.0))
    with pytest.raises(ValueError, match="requires_grad=True"):
        fit(tmp_path, KLAnnealingCallback(monotonic_schedule(10)), module, max_steps=1)
    module = TinyVAE()
    module.register_buffer("beta2", torch.zeros(3))
    callback = KLAnnealingCallback(monotonic_schedule(10), attribute="beta2")
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        fit(tmp_path, callback, module, max_steps=1)


# ---- the run-too-short warning ------------------------------------------------------------------


def test_warns_once_when_the_warm_up_outlasts_max_steps(tmp_path):
    callback = KLAnnealingCallback(monotonic_schedule(100))
    with pytest.warns(UserWarning, match="ends after 10 optimizer steps") as record:
        fit(tmp_path, callback, max_steps=10)
        trainer(tmp_path, [callback], max_steps=20).fit(TinyVAE(), loader())
    assert len([w for w in record if "KLAnnealingCallback" in str(w.message)]) == 1


@pytest.mark.parametrize(
    ("schedule", "kwargs", "short"),
    [
        (monotonic_schedule(10), dict(max_steps=11), False),
        (monotonic_schedule(10), dict(max_steps=10), True),  # steps 0..9 never reach 1
        (monotonic_schedule(10), dict(max_epochs=1), True),  # 8 steps
        (Annealer(total_steps=10), dict(max_steps=11), False),
        (Annealer(total_steps=10), dict(max_steps=10), True),
        (Annealer(total_steps=10, cyclical=True), dict(max_steps=5), False),
        (PIController(target_kl=1.0), dict(max_steps=2), False),
    ],
)
def test_the_warning_fires_exactly_when_the_run_is_too_short(tmp_path, schedule, kwargs, short):
    import warnings

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit(tmp_path, KLAnnealingCallback(schedule), **kwargs)
    ours = [w for w in record if "KLAnnealingCallback" in str(w.message)]
    assert len(ours) == int(short)


def test_the_warning_counts_epochs_with_update_epoch(tmp_path):
    callback = KLAnnealingCallback(monotonic_schedule(3), update="epoch")
    with pytest.warns(UserWarning, match="ends after 3 epochs"):
        fit(tmp_path, callback, max_epochs=3)


# ---- checkpoints ---------------------------------------------------------------------------


def test_state_key_is_unique_per_attribute():
    a = KLAnnealingCallback(monotonic_schedule(10))
    b = KLAnnealingCallback(monotonic_schedule(10), attribute="gamma")
    assert a.state_key != b.state_key


def test_loading_state_of_another_schedule_raises():
    saved = KLAnnealingCallback(monotonic_schedule(10)).state_dict()
    with pytest.raises(ValueError, match="saved with schedule="):
        KLAnnealingCallback(monotonic_schedule(20)).load_state_dict(saved)
    with pytest.raises(ValueError, match="saved with kind='schedule'"):
        KLAnnealingCallback(Annealer(10)).load_state_dict(saved)
    with pytest.raises(ValueError, match="saved with update='batch'"):
        KLAnnealingCallback(monotonic_schedule(10), update="epoch").load_state_dict(saved)
    with pytest.raises(ValueError, match="missing keys"):
        KLAnnealingCallback(monotonic_schedule(10)).load_state_dict({"kind": "schedule"})


def test_the_checkpoint_holds_plain_data_under_the_state_key(tmp_path):
    annealer = Annealer(total_steps=10)
    callback = KLAnnealingCallback(annealer)
    _, run = fit(tmp_path, callback, max_steps=3)
    run.save_checkpoint(tmp_path / "c.ckpt")
    checkpoint = torch.load(tmp_path / "c.ckpt", weights_only=True)
    state = checkpoint["callbacks"][callback.state_key]
    assert state["state"]["current_step"] == 3 and state["position"] == 3
    json.dumps(state)


def test_resuming_from_a_checkpoint_without_the_callbacks_state_warns(tmp_path):
    run = trainer(tmp_path, [], max_steps=8)
    run.fit(TinyVAE(), loader())
    run.save_checkpoint(tmp_path / "c.ckpt")  # trained without the callback
    callback = KLAnnealingCallback(Annealer(total_steps=4))
    with pytest.warns(UserWarning, match="holds no state for KLAnnealingCallback"):
        trainer(tmp_path, [callback], max_steps=12).fit(
            TinyVAE(), loader(), ckpt_path=tmp_path / "c.ckpt"
        )


RESUME_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import lightning.pytorch as pl
from test_lightning import TinyVAE, loader, trainer
from kl_schedules import Annealer, monotonic_schedule
from kl_schedules.control import PIController
from kl_schedules.lightning import KLAnnealingCallback

phase, out = sys.argv[1], sys.argv[2]
schedules = {{
    "schedule": lambda: monotonic_schedule(20),
    "annealer": lambda: Annealer(total_steps=20, shape="cosine"),
    "pi": lambda: PIController(target_kl=0.3, k_p=0.5, k_i=0.05, window=3),
}}
seen = {{}}
for name, make in schedules.items():
    module, callback = TinyVAE(), KLAnnealingCallback(make())
    folder = f"{{out}}/{{name}}"
    save = pl.callbacks.ModelCheckpoint(dirpath=folder, every_n_train_steps=5, save_top_k=-1)
    run = trainer(folder, [callback, save], max_steps=12, enable_checkpointing=True)
    ckpt = None if phase == "full" else f"{{folder}}/epoch=0-step=5.ckpt"
    run.fit(module, loader(repeated=True), ckpt_path=ckpt)
    seen[name] = module.seen
with open(f"{{out}}/{{phase}}.json", "w") as file:
    json.dump(seen, file)
"""


def run_script(tmp_path, source, *args, timeout=300):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_a_resumed_fit_in_a_fresh_process_continues_exactly(tmp_path):
    source = RESUME_SCRIPT.format(tests=str(ROOT / "tests"))
    run_script(tmp_path, source, "full", str(tmp_path))
    run_script(tmp_path, source, "resume", str(tmp_path))
    full = json.loads((tmp_path / "full.json").read_text())
    resumed = json.loads((tmp_path / "resume.json").read_text())
    for name in ("schedule", "annealer", "pi"):
        assert [s for s, _ in full[name]] == list(range(12))
        assert resumed[name] == full[name][5:], name  # same steps, same betas, bit for bit
    assert [b for _, b in full["schedule"]] == [pytest.approx(s / 20) for s in range(12)]
    cosine = [(1 - math.cos(math.pi * s / 20)) / 2 for s in range(12)]
    assert [b for _, b in full["annealer"]] == pytest.approx(cosine)
    assert len({b for _, b in full["pi"][5:]}) > 3  # the controller moved after the resume


# ---- DDP: every rank sees the same beta ---------------------------------------------------------

DDP_SCRIPT = """
import json, os, sys
sys.path.insert(0, {tests!r})
import lightning.pytorch as pl
from torch.utils.data import DataLoader
from test_lightning import TinyVAE, loader, trainer
from kl_schedules.control import PIController
from kl_schedules.lightning import KLAnnealingCallback


class Recording(TinyVAE):
    def on_train_end(self):
        with open(f"{{self.out}}/rank{{self.global_rank}}.json", "w") as file:
            json.dump({{"seen": self.seen, "kls": self.kls}}, file)


if __name__ == "__main__":
    strategy, out = sys.argv[1], sys.argv[2]
    module = Recording()
    module.out = out
    callback = KLAnnealingCallback(PIController(target_kl=0.3, k_p=0.5, k_i=0.05))
    run = trainer(out, [callback], max_steps=6, devices=2, strategy=strategy,
                  use_distributed_sampler=True)
    run.fit(module, loader())
"""


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp"])
def test_every_ddp_rank_sees_the_same_beta(tmp_path, strategy):
    source = DDP_SCRIPT.format(tests=str(ROOT / "tests"))
    run_script(tmp_path, source, strategy, str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["kls"] != ranks[1]["kls"]  # each rank measured its own shard
    assert ranks[0]["seen"] == ranks[1]["seen"]  # and used the same beta at every step
    betas = [b for _, b in ranks[0]["seen"]]
    reference, expected = PIController(target_kl=0.3, k_p=0.5, k_i=0.05), []
    for kl0, kl1 in zip(ranks[0]["kls"], ranks[1]["kls"], strict=True):
        expected.append(reference.beta)
        reference.update((kl0 + kl1) / 2)  # the mean KL over both ranks
    assert betas == pytest.approx(expected, rel=1e-6)


# ---- collapse monitoring -----------------------------------------------------------------------


class StandInMonitor:
    """Duck-typed like kl_schedules.diagnostics.CollapseMonitor: update() returns metrics."""

    def __init__(self):
        self.calls = 0
        self.fed = []

    def update(self, mu, logvar, step=None):
        self.calls += 1
        self.fed.append((mu, logvar, step))
        kl = float((-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)).mean())
        return {"kl": kl, "active_units": 2, "mutual_information": 0.25, "kl_per_dim": mu[0]}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def test_a_monitor_is_fed_each_batch_and_its_metrics_are_logged(tmp_path):
    monitor = StandInMonitor()
    callback = KLAnnealingCallback(monotonic_schedule(10), monitor=monitor)
    module, run = fit(tmp_path, callback, max_steps=3)
    assert monitor.calls == 3
    assert [step for _, _, step in monitor.fed] == [0, 1, 2]  # trainer.global_step
    mu, logvar, _ = monitor.fed[-1]
    assert mu.shape == (BATCH, LATENT) and not mu.requires_grad and not logvar.requires_grad
    metrics = run.callback_metrics
    assert float(metrics["kl"]) == pytest.approx(module.kls[-1], rel=1e-6)
    assert float(metrics["active_units"]) == 2.0
    assert float(metrics["mutual_information"]) == 0.25
    assert "kl_per_dim" not in metrics  # not a scalar: not logged
    assert callback.state_dict()["monitor"] == {"calls": 3}


def test_the_collapse_inputs_hook_can_find_mu_and_logvar_elsewhere(tmp_path):
    class FromModule(KLAnnealingCallback):
        def collapse_inputs(self, outputs):
            return outputs["posterior"]

    class Posterior(TinyVAE):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            return {**out, "posterior": (out["mu"], out["logvar"])}

    monitor = StandInMonitor()
    fit(tmp_path, FromModule(monotonic_schedule(10), monitor=monitor), Posterior(), max_steps=2)
    assert monitor.calls == 2


def test_a_monitor_without_mu_says_what_is_missing(tmp_path):
    class NoMu(TinyVAE):
        def training_step(self, batch, batch_idx):
            return {"loss": super().training_step(batch, batch_idx)["loss"]}

        def on_train_batch_end(self, outputs, batch, batch_idx):
            pass

    callback = KLAnnealingCallback(monotonic_schedule(10), monitor=StandInMonitor())
    with pytest.raises(KeyError, match="'mu'"):
        fit(tmp_path, callback, NoMu(), max_steps=1)


def test_a_monitor_without_a_step_argument_is_fed_mu_and_logvar(tmp_path):
    class NoStep:
        def __init__(self):
            self.shapes = []

        def update(self, mu, logvar):
            self.shapes.append((tuple(mu.shape), tuple(logvar.shape)))

    monitor = NoStep()
    fit(tmp_path, KLAnnealingCallback(monotonic_schedule(10), monitor=monitor), max_steps=2)
    assert monitor.shapes == [((BATCH, LATENT), (BATCH, LATENT))] * 2


def test_monitor_true_makes_a_collapse_monitor():
    diagnostics = pytest.importorskip("kl_schedules.diagnostics")
    callback = KLAnnealingCallback(monotonic_schedule(10), monitor=True)
    assert isinstance(callback.monitor, diagnostics.CollapseMonitor)


# ---- torch.compile -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_compiled_module_with_a_buffer_never_recompiles(tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    module = TinyVAE(buffer=True)
    compiled = torch.compile(module)
    run = trainer(tmp_path, [KLAnnealingCallback(monotonic_schedule(6))], max_steps=8)
    run.fit(compiled, loader())
    assert [b for _, b in module.seen] == [pytest.approx(min(s / 6, 1.0)) for s in range(8)]
    assert sum(counters["recompiles"].values()) == 0
    assert counters["stats"]["unique_graphs"] >= 1  # it did compile


def test_a_compiled_module_with_a_float_beta_is_an_error(tmp_path):
    # measured: the compiled step kept the second beta for every later step
    run = trainer(tmp_path, [KLAnnealingCallback(monotonic_schedule(6))], max_steps=2)
    with pytest.raises(ValueError, match="register_buffer"):
        run.fit(torch.compile(TinyVAE()), loader())


# ---- import -----------------------------------------------------------------------------------


def test_missing_lightning_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "kl_schedules.lightning")
    with pytest.raises(ImportError, match=r"kl_schedules\[lightning\]"):
        import kl_schedules.lightning  # noqa: F401


# ---- the example ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_example_resumes_its_warm_up_where_it_was():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "lightning_vae", ROOT / "examples" / "lightning_vae.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--quick"])  # 30 steps, warm-up over 20, resumed at step 15
    full, resumed = result["full"], result["resumed"]
    assert [row["step"] for row in full] == list(range(30))
    assert [row["beta"] for row in full] == [pytest.approx(min(s / 20, 1.0)) for s in range(30)]
    assert [row["beta"] for row in resumed] == [row["beta"] for row in full[15:]]
    assert result["same"]

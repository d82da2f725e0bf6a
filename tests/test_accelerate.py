"""Host objects in Hugging Face Accelerate checkpoints: ``register_for_checkpointing`` with an
``Annealer``, a ``PIController`` and a ``GECO``, through ``save_state`` / ``load_state``, in a
real training loop (CPU, one process), against the uninterrupted run."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
accelerate = pytest.importorskip("accelerate")

from kl_schedules import Annealer  # noqa: E402
from kl_schedules.control import GECO, PIController  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def make():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    return (
        model,
        optimizer,
        [
            Annealer(total_steps=8, shape="cosine"),
            PIController(target_kl=0.3, k_p=0.5, k_i=0.05, window=3),
            GECO(goal=0.5, step_size=0.5),
        ],
    )


def train(accelerator, model, optimizer, objects, steps):
    """A VAE-shaped loop: each object's beta weights a KL-like term; returns the betas used."""
    annealer, pi, geco = objects
    data = torch.randn(steps[-1] + 1, 8, 4, generator=torch.Generator().manual_seed(1))
    used = []
    for step in steps:
        out = model(data[step])
        kl, recon = (out**2).mean(), ((out - data[step]) ** 2).mean()
        used.append((annealer.beta, pi.beta, geco.beta))
        loss = recon + (annealer.beta + pi.beta + geco.beta) * kl
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        annealer.step()
        pi.update(kl.detach())
        geco.update(recon.detach())
    return used


def prepared(objects=None):
    accelerator = accelerate.Accelerator(cpu=True)
    model, optimizer, fresh = make()
    model, optimizer = accelerator.prepare(model, optimizer)
    objects = objects or fresh
    accelerator.register_for_checkpointing(*objects)
    return accelerator, model, optimizer, objects


def test_annealer_and_controllers_round_trip_through_save_state(tmp_path):
    accelerator, model, optimizer, objects = prepared()
    first = train(accelerator, model, optimizer, objects, range(5))
    accelerator.save_state(str(tmp_path / "ckpt"))
    rest = train(accelerator, model, optimizer, objects, range(5, 10))

    accelerator, model, optimizer, fresh = prepared()  # a fresh loop, as after a restart
    assert fresh[0].current_step == 0
    accelerator.load_state(str(tmp_path / "ckpt"))
    assert fresh[0].current_step == 5
    assert [o.state_dict() for o in fresh] != [o.state_dict() for o in make()[2]]
    resumed = train(accelerator, model, optimizer, fresh, range(5, 10))
    assert resumed == rest  # bit for bit, all three
    assert len({b for b, _, _ in first + rest}) == 9  # the cosine warm-up (then 1.0, held)

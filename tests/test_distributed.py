"""The documented loop under torch.distributed (gloo, 2 processes on this machine).

Every rank must see the same beta at every step, and a checkpoint saved on rank 0 must
restore every rank. The annealer agrees across ranks by construction (it depends only on
the step); a feedback controller agrees only if every rank feeds it the same measurement,
so the loop all-reduces the batch KL first (and the test shows that without it, the ranks
drift apart).
"""

from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

WORLD = 2
STEPS = 40


def all_equal_across_ranks(values):
    """True if the list of floats ``values`` is identical on every rank."""
    mine = torch.tensor(values, dtype=torch.float64)
    gathered = [torch.empty_like(mine) for _ in range(WORLD)]
    dist.all_gather(gathered, mine)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def mean_across_ranks(value):
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return total / WORLD


def worker(rank, directory):
    from kl_schedules.control import PIController
    from kl_schedules.torch import Annealer, VAELoss

    dist.init_process_group(
        "gloo", init_method=f"file://{directory}/store", rank=rank, world_size=WORLD
    )
    torch.manual_seed(rank)  # each rank sees its own data, as under a DistributedSampler
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(16, 2 * 4 + 16))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = VAELoss(from_logits=True)
    annealer = Annealer(total_steps=10, shape="cosine", cyclical=True)
    controller = PIController(target_kl=1.0, k_i=1e-2)  # fed the all-reduced KL
    local = PIController(target_kl=1.0, k_i=1e-2)  # fed this rank's KL: the pitfall
    trace, local_trace = [], []
    for step in range(STEPS):
        if step == 25:
            annealer.set_cyclical(False)
        x0 = (torch.rand(8, 16) < 0.3).float()
        out = model(x0)
        mu, logvar, logits = out[:, :4], out[:, 4:8], out[:, 8:]
        recon, kld = criterion(logits, x0, mu, logvar)
        loss = recon + annealer(kld) + controller.beta * kld
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        annealer.step()
        controller.update(mean_across_ranks(kld))
        local.update(kld.detach())
        trace.append([annealer.beta, controller.beta])
        local_trace.append(local.beta)
    same_beta = all_equal_across_ranks([b for row in trace for b in row])
    local_same = all_equal_across_ranks(local_trace)

    # rank 0 saves, every rank restores (state_dicts and whole objects)
    if rank == 0:
        torch.save(
            {"annealer": annealer.state_dict(), "controller": controller.state_dict()},
            f"{directory}/state.pt",
        )
        torch.save({"annealer": annealer, "controller": controller}, f"{directory}/whole.pt")
    dist.barrier()
    state = torch.load(f"{directory}/state.pt")
    whole = torch.load(f"{directory}/whole.pt")
    restored_annealer, restored_controller = Annealer(1), PIController(target_kl=1.0, k_i=1e-2)
    restored_annealer.load_state_dict(state["annealer"])
    restored_controller.load_state_dict(state["controller"])
    restored_ok = all(
        a.state_dict() == annealer.state_dict() and c.state_dict() == controller.state_dict()
        for a, c in (
            (restored_annealer, restored_controller),
            (whole["annealer"], whole["controller"]),
        )
    )
    dist.barrier()
    with open(f"{directory}/rank{rank}.json", "w") as handle:
        json.dump(
            {
                "same_beta": same_beta,
                "local_same": local_same,
                "restored_ok": restored_ok,
                "betas": trace,
            },
            handle,
        )
    dist.destroy_process_group()


def test_documented_loop_under_torch_distributed(tmp_path):
    import torch.multiprocessing as mp

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for report in reports:
        assert report["same_beta"], "ranks saw different betas"
        assert report["restored_ok"], "a rank did not restore rank 0's checkpoint"
        # without the all-reduce, per-rank controllers drift apart: the pitfall is real
        assert not report["local_same"]
    assert reports[0]["betas"] == reports[1]["betas"]
    annealer_betas = [row[0] for row in reports[0]["betas"]]
    assert annealer_betas[9] == 0.0 and max(annealer_betas[:25]) < 1.0  # cyclical wrap
    assert annealer_betas[-1] == 1.0  # plain from step 25: climbs to full and holds

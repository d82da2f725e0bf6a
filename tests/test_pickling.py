"""Whole host objects survive pickle, deepcopy and torch.save/torch.load and continue with
identical values; schedules pickle and are values."""

from __future__ import annotations

import copy
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from kl_schedules import Annealer
from kl_schedules.control import GECO, PIController


def advanced_objects():
    annealer = Annealer(7, "logistic", baseline=0.2, cyclical=True)
    controller = PIController(target_kl=2.0, k_i=1e-2, window=3)
    geco_control = GECO(goal=1.0, step_size=0.05)
    for t in range(11):
        annealer.step()
        controller.update(4.0 - 0.1 * t)
        geco_control.update(1.5 - 0.05 * t)
    return annealer, controller, geco_control


def continue_run(annealer, controller, geco_control, steps=15):
    """Betas of the next ``steps`` steps, toggling the annealer on the way."""
    trace = []
    for t in range(steps):
        if t == 5:
            annealer.set_cyclical(False)
        trace.append((annealer.beta, annealer(2.0), controller.beta, geco_control.beta))
        annealer.step()
        controller.update(3.0 + 0.1 * t)
        geco_control.update(1.2 - 0.01 * t)
    return trace


def round_trips():
    yield "pickle", lambda objs: pickle.loads(pickle.dumps(objs))
    yield "deepcopy", copy.deepcopy

    def torch_save_load(objs):
        torch = pytest.importorskip("torch")

        buffer = io.BytesIO()
        torch.save({"objects": objs}, buffer)
        buffer.seek(0)
        return torch.load(buffer)["objects"]  # torch's default: weights_only=True

    yield "torch.save", torch_save_load


@pytest.mark.parametrize("how,round_trip", list(round_trips()), ids=lambda x: str(x)[:12])
def test_whole_objects_round_trip_and_continue_identically(how, round_trip):
    originals = advanced_objects()
    copies = round_trip(originals)
    for original, restored in zip(originals, copies, strict=True):
        assert type(restored) is type(original) and restored is not original
        assert repr(restored) == repr(original)
        assert restored.state_dict() == original.state_dict()
    assert continue_run(*copies) == continue_run(*originals)


def test_pickled_state_is_validated():
    rebuild, args = Annealer(5).__reduce__()
    module, name, state = args
    state["current_step"] = 9  # past total_steps
    with pytest.raises(ValueError, match="current_step"):
        rebuild(module, name, state)
    with pytest.raises(ValueError, match="not a kl_schedules host object"):
        rebuild("os", "system", state)


def test_objects_pickled_by_the_previous_version_still_load():
    """The previous format: the class, then ``__setstate__({"config", "state"})``, with
    controllers' states holding no settings."""
    annealer = Annealer.__new__(Annealer)
    annealer.__setstate__(
        {
            "config": {"total_steps": 7, "shape": "cosine"},
            "state": {
                "current_step": 3,
                "total_steps": 7,
                "shape": "cosine",
                "baseline": 0.1,
                "cyclical": True,
                "disable": False,
            },
        }
    )
    assert repr(annealer) == repr(Annealer(7, "cosine", 0.1, cyclical=True)).replace(
        "current_step=0", "current_step=3"
    )
    controller = PIController.__new__(PIController)
    config = {"target_kl": 2.0, "k_p": 0.01, "k_i": 0.01, "beta_min": 0.0, "beta_max": 1.0}
    controller.__setstate__(
        {"config": {**config, "window": 1}, "state": {"beta": 0.25, "integral": 0.2}}
    )
    assert controller.beta == 0.25 and controller.integral == 0.2


CHECKPOINT_LOADER = """
import sys, torch
from kl_schedules import Annealer
objects = torch.load(sys.argv[1])  # torch's default: weights_only=True
annealer, controller, geco_control = objects["objects"]
print(repr(annealer)); print(repr(controller)); print(repr(geco_control))
"""


def test_torch_load_with_weights_only_needs_no_kl_schedules_torch_import(tmp_path):
    """In a fresh process that imports only ``Annealer`` from kl_schedules (before torch),
    a checkpoint holding all three host objects loads with ``weights_only=True``."""
    torch = pytest.importorskip("torch")
    originals = advanced_objects()
    path = tmp_path / "checkpoint.pt"
    torch.save({"objects": originals}, path)
    script = tmp_path / "load.py"
    script.write_text(CHECKPOINT_LOADER)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [repr(obj) for obj in originals]


def test_a_copy_has_its_own_torch_mirror():
    torch = pytest.importorskip("torch")
    annealer = Annealer(4)
    twin = copy.deepcopy(annealer)
    twin.step()
    assert annealer(torch.tensor(1.0)).item() == 0.0
    assert twin(torch.tensor(1.0)).item() == 0.25

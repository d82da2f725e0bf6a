"""Whole host objects survive pickle, deepcopy and torch.save/torch.load and continue with
identical values; schedules pickle and are values."""

from __future__ import annotations

import copy
import io
import pickle

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
        import kl_schedules.torch  # noqa: F401  (allows them in weights_only loads)

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
    annealer = Annealer(5)
    state = annealer.__getstate__()
    state["state"]["current_step"] = 9  # past total_steps
    broken = Annealer.__new__(Annealer)
    with pytest.raises(ValueError, match="current_step"):
        broken.__setstate__(state)


def test_a_copy_has_its_own_torch_mirror():
    torch = pytest.importorskip("torch")
    annealer = Annealer(4)
    twin = copy.deepcopy(annealer)
    twin.step()
    assert annealer(torch.tensor(1.0)).item() == 0.0
    assert twin(torch.tensor(1.0)).item() == 0.25

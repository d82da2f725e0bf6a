"""The error contract every public module shares: a bad argument raises at construction, a
ValueError (an ArgumentTypeError is also a TypeError) whose message and ``argument`` name it;
NumPy scalars follow one rule in every API; an adapter without its framework raises an
ImportError naming the extra, and ``import kl_schedules`` imports no framework."""

from __future__ import annotations

import fractions
import math
import pickle
import subprocess
import sys

import jax
import numpy as np
import pytest

from kl_schedules import (
    Annealer,
    ArgumentError,
    ArgumentTypeError,
    annealing,
    constant_schedule,
    cyclical_schedule,
    epochs_on_steps,
    from_dict,
    monotonic_schedule,
    steps_on_epochs,
)
from kl_schedules.control import GECO, PIController, free_bits, geco, pi_controller

BAD_COUNTS = [
    (0, ValueError),
    (-3, ValueError),
    (2.5, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (True, TypeError),
    ("10", TypeError),
    (None, TypeError),
    (2**31, ValueError),
]


@pytest.mark.parametrize(("value", "error"), BAD_COUNTS)
@pytest.mark.parametrize(
    "factory",
    [
        lambda v: monotonic_schedule(total_steps=v),
        lambda v: annealing(total_steps=v),
        lambda v: Annealer(total_steps=v),
    ],
    ids=["monotonic", "annealing", "Annealer"],
)
def test_bad_total_steps(factory, value, error):
    with pytest.raises(error, match="total_steps"):
        factory(value)


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (1.5, ValueError), (True, TypeError), ("3", TypeError)]
)
def test_bad_delay(value, error):
    with pytest.raises(error, match="delay"):
        monotonic_schedule(10, delay=value)


def test_delay_plus_total_overflow():
    with pytest.raises(ValueError, match="delay"):
        monotonic_schedule(2**30, delay=2**30)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (-2.0, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (True, TypeError),
        ("10", TypeError),
        (2**31, ValueError),
        (1, ValueError),  # a cycle of one step never leaves start
        (0.25, ValueError),  # a fraction of training is not a period
        (fractions.Fraction(1, 2), ValueError),
    ],
)
def test_bad_period(value, error):
    with pytest.raises(error, match="period"):
        cyclical_schedule(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (1.01, ValueError),
        (-0.5, ValueError),
        (math.nan, ValueError),
        (True, TypeError),
        ("0.5", TypeError),
    ],
)
def test_bad_ratio(value, error):
    with pytest.raises(error, match="ratio"):
        cyclical_schedule(10, ratio=value)


@pytest.mark.parametrize("name", ["start", "end"])
@pytest.mark.parametrize(
    ("value", "error"), [(math.nan, ValueError), (-math.inf, ValueError), ("1", TypeError)]
)
def test_bad_levels(name, value, error):
    with pytest.raises(error, match=name):
        monotonic_schedule(10, **{name: value})
    with pytest.raises(error, match=name):
        cyclical_schedule(10, **{name: value})


@pytest.mark.parametrize(("value", "error"), [(math.nan, ValueError), ("1", TypeError)])
def test_bad_constant(value, error):
    with pytest.raises(error, match="value"):
        constant_schedule(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (-1.0, ValueError),
        (math.inf, ValueError),
        (True, TypeError),
        ("12", TypeError),
    ],
)
def test_bad_steepness(value, error):
    with pytest.raises(error, match="steepness"):
        monotonic_schedule(10, "logistic", steepness=value)


@pytest.mark.parametrize(
    "factory",
    [
        lambda s: monotonic_schedule(10, shape=s),
        lambda s: cyclical_schedule(10, shape=s),
        lambda s: annealing(10, shape=s),
        lambda s: Annealer(10, shape=s),
    ],
    ids=["monotonic", "cyclical", "annealing", "Annealer"],
)
def test_unknown_shape_lists_valid_names(factory):
    with pytest.raises(ValueError, match=r"shape.*'linear', 'cosine', 'logistic'"):
        factory("sigmoid")
    with pytest.raises(TypeError, match="shape"):
        factory(3)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-0.1, ValueError),
        (1.5, ValueError),
        (math.nan, ValueError),
        ("0.5", TypeError),
        (True, TypeError),
    ],
)
def test_bad_baseline(value, error):
    # A numeric string baseline must fail at construction (the original accepted it).
    with pytest.raises(error, match="baseline"):
        annealing(10, baseline=value)
    with pytest.raises(error, match="baseline"):
        Annealer(10, baseline=value)


@pytest.mark.parametrize("name", ["cyclical", "disable"])
@pytest.mark.parametrize("value", [1, "True", None, np.float32(1.0)])
def test_annealer_flags_must_be_bool(name, value):
    with pytest.raises(TypeError, match=name):
        Annealer(10, **{name: value})


def test_annealing_flags_must_be_bool():
    fns = annealing(10)
    with pytest.raises(TypeError, match="cyclical"):
        fns.init(cyclical=1)
    with pytest.raises(TypeError, match="flag"):
        fns.set_cyclical(fns.init(), "yes")


def test_step_of_bool_rejected():
    with pytest.raises(TypeError, match="step"):
        cyclical_schedule(10)(True)


def test_accepted_count_types():
    torch = pytest.importorskip("torch")
    for value in (np.int64(10), np.int32(10), 10.0, torch.tensor(10)):
        assert Annealer(value).total_steps == 10
        assert float(monotonic_schedule(value)(5)) == pytest.approx(0.5)


# ---- errors carry the argument's name as data ------------------------------------------------


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: constant_schedule("1"), "value"),
        (lambda: monotonic_schedule(0), "total_steps"),
        (lambda: monotonic_schedule(10, shape="tanh"), "shape"),
        (lambda: monotonic_schedule(10, shape=3), "shape"),
        (lambda: monotonic_schedule(10, start=math.nan), "start"),
        (lambda: monotonic_schedule(10, end=True), "end"),
        (lambda: monotonic_schedule(10, delay=-1), "delay"),
        (lambda: monotonic_schedule(10, steepness=0), "steepness"),
        (lambda: monotonic_schedule(2**30, delay=2**30), "total_steps"),
        (lambda: cyclical_schedule(1), "period"),
        (lambda: cyclical_schedule("10"), "period"),
        (lambda: cyclical_schedule(1e9 + 0.5), "period"),
        (lambda: cyclical_schedule(10, ratio=0), "ratio"),
        (lambda: cyclical_schedule(10, hold_start=0.6), "hold_start"),
        (lambda: cyclical_schedule(10, num_cycles=0), "num_cycles"),
        (lambda: cyclical_schedule(10, num_cycles=10**9), "num_cycles"),
        (lambda: epochs_on_steps(lambda t: t, 10), "schedule"),
        (lambda: epochs_on_steps(constant_schedule(), 0), "steps_per_epoch"),
        (lambda: epochs_on_steps(constant_schedule(), 10, hold=1), "hold"),
        (lambda: steps_on_epochs(constant_schedule(), 1.5), "steps_per_epoch"),
        (lambda: from_dict({"kind": "cyclical", "period": "a/b"}), "period"),
        (lambda: from_dict({"kind": "cyclical"}), "period"),
        (lambda: Annealer(10, baseline=2), "baseline"),
        (lambda: annealing(10, shape="tanh"), "shape"),
    ],
)
def test_every_bad_argument_is_named_in_the_error_as_data(build, argument):
    with pytest.raises(ArgumentError) as raised:
        build()
    assert raised.value.argument == argument
    assert isinstance(raised.value, ValueError)
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (type(copy), str(copy), copy.argument) == (
        type(raised.value),
        str(raised.value),
        argument,
    )


def test_a_type_error_is_an_argument_error_a_type_error_and_a_value_error():
    with pytest.raises(ArgumentTypeError) as raised:
        monotonic_schedule(10, delay="3")
    assert isinstance(raised.value, (TypeError)) and isinstance(raised.value, ArgumentError)
    assert raised.value.argument == "delay"


# ---- drop-in error types -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total_steps": "10"},
        {"total_steps": 2.5},
        {"total_steps": 0},
        {"total_steps": True},
        {"total_steps": 10, "shape": "sine"},
        {"total_steps": 10, "shape": 3},
        {"total_steps": 10, "baseline": 2.0},
        {"total_steps": 10, "baseline": "0.5"},
        {"total_steps": 10, "cyclical": 1},
        {"total_steps": 10, "disable": "no"},
    ],
)
def test_where_the_original_raised_value_error_so_do_we(kwargs):
    with pytest.raises(ValueError):
        Annealer(**kwargs)
    flags = {name: kwargs.pop(name) for name in ("cyclical", "disable") if name in kwargs}
    with pytest.raises(ValueError):  # the pure form agrees
        annealing(**kwargs).init(**{"cyclical": flags.get("cyclical", "not a bool")})


def test_type_errors_are_both_type_and_value_errors():
    with pytest.raises(TypeError) as caught:
        Annealer(10, cyclical="yes")
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "make,state",
    [
        (lambda: PIController(2.0), {"integral": 0.0}),
        (lambda: GECO(1.0, 0.05), {"beta": 1.0, "error_ema": 0.0}),
        (lambda: Annealer(5), {"current_step": 0}),
        (lambda: PIController(2.0), {"beta": 0.1, "integral": 0.0, "typo": 1}),
    ],
)
def test_load_state_dict_names_missing_and_unknown_keys(make, state):
    with pytest.raises(ValueError, match="state_dict must have the keys"):
        make().load_state_dict(state)


# ---- one rule for NumPy scalars, in every API --------------------------------------------


def _set_cyclical(annealer, value):
    annealer.set_cyclical(value)
    return annealer


NUMPY_ACCEPTED = {
    "count": [np.int64(10), np.int32(10), np.uint16(10), np.float64(10.0), np.array(10)],
    "real": [np.float32(0.25), np.float64(0.25), np.int64(1), np.array(0.25)],
    "flag": [np.True_, np.False_, np.array(True)],
}


NUMPY_REJECTED = {
    "count": [np.True_, np.float32(2.5), np.array([10])],
    "real": [np.True_, np.array([0.25]), np.str_("0.25")],
    "flag": [np.int64(1), np.float32(1.0), np.array([True])],
}


COUNT_APIS = {
    "Annealer": lambda v: Annealer(v),
    "annealing": lambda v: annealing(v),
    "monotonic": lambda v: monotonic_schedule(v),
    "cyclical.num_cycles": lambda v: cyclical_schedule(4, num_cycles=v),
    "PIController.window": lambda v: PIController(1.0, window=v),
    "free_bits.groups": lambda v: free_bits(np.zeros(20), 0.1, groups=v),
}


REAL_APIS = {
    "Annealer.baseline": lambda v: Annealer(10, baseline=v),
    "annealing.baseline": lambda v: annealing(10, baseline=v),
    "monotonic.start": lambda v: monotonic_schedule(10, start=v),
    "cyclical.ratio": lambda v: cyclical_schedule(10, ratio=v),
    "constant": lambda v: constant_schedule(v),
    "pi_controller": lambda v: pi_controller(v),
    "PIController": lambda v: PIController(v),
    "geco": lambda v: geco(1.0, v),
    "GECO": lambda v: GECO(1.0, v),
    "free_bits": lambda v: free_bits(np.zeros(3), v),
}


FLAG_APIS = {
    "Annealer.cyclical": lambda v: Annealer(10, cyclical=v),
    "Annealer.disable": lambda v: Annealer(10, disable=v),
    "Annealer.set_cyclical": lambda v: _set_cyclical(Annealer(10), v),
    "annealing.init": lambda v: annealing(10).init(cyclical=v),
    "annealing.set_cyclical": lambda v: annealing(10).set_cyclical(annealing(10).init(), v),
}


APIS = {"count": COUNT_APIS, "real": REAL_APIS, "flag": FLAG_APIS}


def _observe(made):
    """What a user can see of what an API made: its state and settings, or its values."""
    if hasattr(made, "state_dict"):  # a host object
        return made.state_dict()
    if hasattr(made, "to_dict"):  # a schedule: the value itself and its first values
        return made, [float(made(t)) for t in range(12)]
    if hasattr(made, "set_cyclical"):  # the pure annealing functions: their betas
        state, betas = made.init(), []
        for _ in range(12):
            betas.append(float(made.beta(state)))
            state = made.step(state)
        return betas
    if hasattr(made, "update"):  # a pure controller: its betas on a fixed run
        state, betas = made.init(), []
        for measurement in (3.0, 0.5, 2.0, 1.0):
            state = made.update(state, measurement)
            betas.append(float(state.beta))
        return betas
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf).tolist(), made)


@pytest.mark.parametrize(
    "kind,api,value",
    [(k, a, v) for k, apis in APIS.items() for a in apis for v in NUMPY_ACCEPTED[k]],
)
def test_numpy_scalars_are_accepted_by_every_api(kind, api, value):
    """A NumPy scalar or 0-d array makes what the equal Python number makes."""
    assert _observe(APIS[kind][api](value)) == _observe(APIS[kind][api](value.item()))


@pytest.mark.parametrize(
    "kind,api,value",
    [(k, a, v) for k, apis in APIS.items() for a in apis for v in NUMPY_REJECTED[k]],
)
def test_numpy_scalars_are_rejected_by_every_api(kind, api, value):
    with pytest.raises(ValueError):
        APIS[kind][api](value)


# ---- optional frameworks -----------------------------------------------------------------


@pytest.mark.parametrize(
    "module,framework",
    [
        ("kl_schedules.torch", "torch"),
        ("kl_schedules.keras", "keras"),
        ("kl_schedules.numpyro", "numpyro"),
        pytest.param("kl_schedules.pyro", "pyro", marks=pytest.mark.slow),  # imports torch
    ],
)
def test_an_adapter_without_its_framework_names_the_extra(module, framework):
    code = (
        f"import sys; sys.modules[{framework!r}] = None\n"
        f"try:\n    import {module}\nexcept ImportError as e:\n    print('ERR', e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    extra = f"kl_schedules[{framework}]"
    assert f"pip install '{extra}'" in result.stdout, result.stdout + result.stderr


def test_importing_the_library_imports_no_framework():
    frameworks = ("torch", "keras", "flax", "matplotlib", "numpyro", "pyro", "lightning")
    code = (
        "import sys, kl_schedules, kl_schedules.control\n"
        f"print(sorted(m for m in {frameworks!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr

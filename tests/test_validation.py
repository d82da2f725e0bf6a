"""Every bad argument raises at construction, with a message naming the argument."""

from __future__ import annotations

import fractions
import math
import pickle

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

"""plot_schedule and describe: a schedule's (or an Annealer's) values over a run, drawn
or summarised; matplotlib optional."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kl_schedules import Annealer, cyclical_schedule, describe


def test_plot_schedule_returns_axes_with_the_values():
    pytest.importorskip("matplotlib")
    from kl_schedules.plot import plot_schedule

    ax = plot_schedule(cyclical_schedule(10), 25, label="cyclical")
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(x, np.arange(25))
    expected = [min((t % 10) / 5, 1.0) for t in range(25)]
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert ax.get_legend() is not None
    ax2 = plot_schedule(cyclical_schedule(10, shape="cosine"), 25, ax=ax)
    assert ax2 is ax and len(ax.lines) == 2


def test_bad_num_steps():
    from kl_schedules.plot import plot_schedule

    with pytest.raises(ValueError, match="num_steps"):
        plot_schedule(cyclical_schedule(10), 0)


@pytest.mark.slow
def test_clear_error_without_matplotlib():
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.pyplot'] = None\n"
        "from kl_schedules import cyclical_schedule\n"
        "from kl_schedules.plot import plot_schedule\n"
        "try:\n    plot_schedule(cyclical_schedule(4), 8)\n"
        "except ImportError as e:\n    print('ERR', e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "ERR kl_schedules.plot needs matplotlib" in result.stdout


@pytest.mark.parametrize(
    "module,framework,extra",
    [
        ("kl_schedules.torch", "torch", "kl_schedules[torch]"),
        ("kl_schedules.keras", "keras", "kl_schedules[keras]"),
    ],
)
def test_an_adapter_without_its_framework_names_the_extra(module, framework, extra):
    code = (
        f"import sys; sys.modules[{framework!r}] = None\n"
        f"try:\n    import {module}\nexcept ImportError as e:\n    print('ERR', e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert f"pip install '{extra}'" in result.stdout, result.stdout + result.stderr


def test_importing_the_library_imports_no_framework():
    code = (
        "import sys, kl_schedules, kl_schedules.control\n"
        "print(sorted(m for m in ('torch', 'keras', 'flax', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def recorded_betas(make_annealer, num_steps):
    """The reference: a fresh annealer stepped ``num_steps`` times, its beta recorded."""
    annealer = make_annealer()
    betas = []
    for _ in range(num_steps):
        betas.append(annealer.beta)
        annealer.step()
    return betas


ANNEALERS = [
    lambda: Annealer(10),
    lambda: Annealer(10, "cosine", baseline=0.2, cyclical=True),
    lambda: Annealer(7, "logistic", cyclical=True),
    lambda: Annealer(5, disable=True),
]


@pytest.mark.parametrize("make_annealer", ANNEALERS)
def test_plot_schedule_draws_an_annealers_own_betas_and_leaves_it_alone(make_annealer):
    pytest.importorskip("matplotlib")
    from kl_schedules.plot import plot_schedule

    annealer = make_annealer()
    for _ in range(3):
        annealer.step()
    before = annealer.state_dict()
    ax = plot_schedule(annealer, 25)
    assert ax.lines[0].get_ydata().tolist() == recorded_betas(make_annealer, 25)
    assert annealer.state_dict() == before


@pytest.mark.parametrize("make_annealer", ANNEALERS)
def test_describe_reports_an_annealers_own_betas(make_annealer):
    annealer = make_annealer()
    annealer.step()
    before = annealer.state_dict()
    betas = recorded_betas(make_annealer, 30)
    summary = describe(annealer, 30)
    assert annealer.state_dict() == before
    assert (summary.min, summary.max) == (min(betas), max(betas))
    first = next((t for t, beta in enumerate(betas) if beta == summary.final_value), None)
    assert summary.first_step_at_final == first


def test_describe_the_reported_annealer():
    summary = describe(Annealer(10), 20)  # was: "reaches 9.5 at step 19"
    assert (summary.final_value, summary.first_step_at_final, summary.cycles) == (1.0, 10, None)
    cyclical = describe(Annealer(10, cyclical=True), 25)
    assert cyclical.final_value == 1.0 and not cyclical.reaches_final and cyclical.cycles == 2.5
    assert str(cyclical) == "never reaches 1 within 25 steps, 2.5 cycles; beta in [0, 0.9]"


def test_describe_a_long_run_of_an_annealer_steps_only_its_distinct_counts():
    summary = describe(Annealer(1000, "cosine"), 10**7)
    assert summary.first_step_at_final == 1000 and summary.max == 1.0

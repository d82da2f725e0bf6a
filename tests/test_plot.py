"""kl_schedules.plot: plot_schedule draws a schedule's (or an Annealer's) values over a run;
matplotlib is optional. (describe(): in test_schedules.py.)"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kl_schedules import cyclical_schedule
from tests.reference import annealers, recorded_betas


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


@pytest.mark.parametrize("make_annealer", annealers())
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

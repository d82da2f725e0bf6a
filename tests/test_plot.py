"""plot_schedule: draws the schedule's values from one vectorised call; matplotlib optional."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kl_schedules import cyclical_schedule


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

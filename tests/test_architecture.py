"""The package's shape: no import cycles (imports inside functions included), and
``import kl_schedules`` stays light (no optional framework imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = ("torch", "keras", "lightning", "numpyro", "pyro", "flax", "matplotlib")


def test_no_import_cycles():
    result = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "import_cycles.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 import cycles" in result.stdout


def test_import_kl_schedules_imports_no_optional_framework():
    code = (
        "import sys, kl_schedules, kl_schedules.control, kl_schedules.diagnostics;"
        f"print([m for m in {OPTIONAL!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout

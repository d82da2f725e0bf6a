"""The documentation site builds from the docstrings and pages, warnings as errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_sphinx_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "docs",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    api = (tmp_path / "api.html").read_text()
    for name in ("cyclical_schedule", "PIController", "KLAnnealingCallback", "kl_balance"):
        assert name in api
    assert "MathJax" in api or "mathjax" in api  # the maths is rendered
    assert (tmp_path / "pitfalls.html").read_text().count("torch.compile") >= 1

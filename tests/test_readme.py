"""Every ```python block of the README runs, top to bottom, in one namespace."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_snippets():
    assert len(BLOCKS) >= 5


def test_readme_snippets_run(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("flax")
    monkeypatch.chdir(tmp_path)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    namespace: dict = {}
    for number, block in enumerate(BLOCKS):
        try:
            exec(compile(block, f"README.md block {number}", "exec"), namespace)
        except Exception as error:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"README python block {number} failed:\n{block}") from error

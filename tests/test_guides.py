"""The documentation cannot rot: every ```python block of every page under docs/ runs.

Per page, the blocks run top to bottom in one namespace (as a reader would paste them), in
a fresh temporary working directory. A page that needs an optional framework says so with
an HTML comment, ``<!-- requires: torch, lightning -->``; it is skipped where one of them
is missing. Pages whose blocks take more than a few seconds are marked slow below.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SKIP_DIRS = {"_build", "_generated", "_ext", "_static", "posterior_collapse"}
BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
REQUIRES = re.compile(r"<!--\s*requires:\s*([\w.,\s-]+?)\s*-->")
FAST = {"pitfalls.md", "comparison.md", "background.md", "api.md", "benchmarks.md"}


def pages() -> list[Path]:
    return sorted(
        path
        for path in DOCS.rglob("*.md")
        if not SKIP_DIRS.intersection(path.relative_to(DOCS).parts)
    )


def blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def requirements(text: str) -> list[str]:
    names: list[str] = []
    for match in REQUIRES.finditer(text):
        names += [name.strip() for name in match.group(1).split(",") if name.strip()]
    return names


def _params():
    for path in pages():
        name = str(path.relative_to(DOCS))
        marks = [] if path.name in FAST else [pytest.mark.slow]
        yield pytest.param(path, id=name, marks=marks)


def test_the_runner_finds_the_guides():
    names = {str(path.relative_to(DOCS)) for path in pages()}
    assert {"guide/getting_started.md", "guide/flax_linen.md", "guide/control.md"} <= names
    assert sum(len(blocks(path.read_text())) for path in pages()) >= 12
    assert requirements("<!-- requires: torch, lightning -->\n") == ["torch", "lightning"]
    text = "```python\nx = 1\n```\n\n```text\nnot run\n```\n\n```python\ny = 2\n```\n"
    assert blocks(text) == ["x = 1\n", "y = 2\n"]


@pytest.mark.parametrize("page", list(_params()))
def test_page_code_runs(page: Path, tmp_path, monkeypatch):
    text = page.read_text()
    code_blocks = blocks(text)
    if not code_blocks:
        pytest.skip("no python blocks")
    for name in requirements(text):
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # a missing parent package
            found = False
        if not found:
            pytest.skip(f"{name} is not installed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "jax"))
    namespace: dict[str, object] = {"__name__": "__main__"}
    with warnings.catch_warnings():
        # Lightning's own deprecation warnings (torch's pytree API) are not ours to fix
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"lightning\.")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"lightning\.")
        for number, source in enumerate(code_blocks):
            filename = f"{page.relative_to(ROOT)}, python block {number}"
            try:
                exec(compile(source, filename, "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"{filename} failed:\n{source}") from error

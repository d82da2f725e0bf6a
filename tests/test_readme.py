"""The README is true: every ```python block runs, top to bottom, in one namespace, and
pastes into the plain Python REPL; its figures and links exist; it cites nothing outside
the repository."""

from __future__ import annotations

import code
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)


def test_readme_has_snippets():
    assert len(BLOCKS) >= 10


class Repl(code.InteractiveConsole):
    """The interactive interpreter, fed line by line as a paste would; records errors."""

    def __init__(self, namespace):
        super().__init__(namespace)
        self.errors: list[str] = []

    def showsyntaxerror(self, filename=None, **kwargs):
        self.errors.append("SyntaxError")

    def showtraceback(self):
        import sys
        import traceback

        self.errors.append("".join(traceback.format_exception(*sys.exc_info())))

    def write(self, data):  # tracebacks and prompts: kept out of the test output
        pass


def test_readme_snippets_run_pasted_into_the_repl(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("flax")
    pytest.importorskip("keras")
    monkeypatch.chdir(tmp_path)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    repl = Repl({"__name__": "__main__"})
    for number, block in enumerate(BLOCKS):
        for line in [*block.splitlines(), ""]:  # a paste ends with a blank line
            repl.push(line)
        assert not repl.errors, f"README python block {number} failed:\n{block}\n{repl.errors}"


def test_links_and_figures_exist():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", TEXT):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


def test_no_document_outside_the_repository_is_cited():
    for path in ROOT.rglob("*"):
        if any(part.startswith(".") or part in ("out", "_build") for part in path.parts):
            continue
        if path.suffix in (".py", ".md", ".toml", ".cff", ".txt") and path.is_file():
            text = path.read_text(errors="ignore")
            for name in ("REFERENCE" + ".md", "DESIGN" + ".md"):
                assert name not in text, f"{path} cites {name}"

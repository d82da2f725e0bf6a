"""The README is true: every ```python block runs, top to bottom, in one namespace, and
pastes into the plain Python REPL; it stays a short landing page; its evidence table is
the results file's; its figures and links exist; it cites nothing outside the
repository."""

from __future__ import annotations

import code
import importlib.util
import os
import re
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)


def test_readme_has_snippets():
    assert len(BLOCKS) >= 4


def test_readme_is_a_landing_page():
    assert len(TEXT) <= 10_000, f"README.md has {len(TEXT)} characters (at most 10,000)"


def test_readme_keeps_the_test_line_that_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    pattern = re.search(r"grep -m1 -E '([^']+)' README.md", ci)
    assert pattern, ".ci/run no longer greps the README's test line"
    lines = [line for line in TEXT.splitlines() if re.search(pattern.group(1), line)]
    assert lines and "pytest" in lines[0], lines


def _framework_available(block: str) -> bool:
    """The Lightning block needs kl_schedules.lightning (and lightning) to run."""
    if "kl_schedules.lightning" not in block:
        return True
    try:
        return importlib.util.find_spec("kl_schedules.lightning") is not None and (
            importlib.util.find_spec("lightning") is not None
        )
    except ImportError:
        return False


class Repl(code.InteractiveConsole):
    """The interactive interpreter, fed line by line as a paste would; records errors."""

    def __init__(self, namespace):
        super().__init__(namespace)
        self.errors: list[str] = []

    def showsyntaxerror(self, filename=None, **kwargs):
        self.errors.append("SyntaxError")

    def showtraceback(self):
        import traceback

        self.errors.append("".join(traceback.format_exception(*sys.exc_info())))

    def write(self, data):  # tracebacks and prompts: kept out of the test output
        pass


@pytest.mark.slow
def test_readme_snippets_run_pasted_into_the_repl(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("flax")
    pytest.importorskip("keras")
    monkeypatch.chdir(tmp_path)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    repl = Repl({"__name__": "__main__"})
    ran = 0
    for number, block in enumerate(BLOCKS):
        if not _framework_available(block):
            continue
        with warnings.catch_warnings():
            # Lightning's own deprecation warnings (torch's pytree API) are not ours to fix
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"lightning\.")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"lightning\.")
            for line in [*block.splitlines(), ""]:  # a paste ends with a blank line
                repl.push(line)
        assert not repl.errors, f"README python block {number} failed:\n{block}\n{repl.errors}"
        ran += 1
    assert ran >= len(BLOCKS) - 1


def test_evidence_table_is_the_results_files():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import _evidence
    finally:
        sys.path.pop(0)
    match = re.search(
        r"<!-- evidence table: start -->\n(.*?)\n<!-- evidence table: end -->", TEXT, flags=re.S
    )
    assert match, "the README has no evidence table between its markers"
    expected = _evidence.headline_table(_evidence.load("topics"), _evidence.load("digits"))
    assert match.group(1).strip() == expected, (
        "the README's evidence table differs from the results files; paste the output of "
        "`python docs/_evidence.py`"
    )


def test_links_and_figures_exist():
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", TEXT)
    assert len(targets) >= 10
    for target in targets:
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

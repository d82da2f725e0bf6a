"""Maths rendered at build time as MathML: the pages need no script and no network.

Sphinx's default renderer (MathJax) loads a script from a CDN when the page is viewed, so
offline the maths shows as raw LaTeX. This renderer converts each formula to MathML with
``latex2mathml`` (pure Python) while the site is built; browsers draw MathML natively.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.writers.html5 import HTML5Translator


def _convert(latex: str, display: str) -> str:
    from latex2mathml.converter import convert

    try:
        return convert(latex.strip(), display=display)
    except Exception as error:  # latex2mathml raises its own exception types
        raise ExtensionError(f"cannot render the formula {latex!r} as MathML: {error}") from error


def _visit_inline(self: HTML5Translator, node: nodes.math) -> None:
    self.body.append(f'<span class="math notranslate">{_convert(node.astext(), "inline")}</span>')
    raise nodes.SkipNode


def _equations(latex: str, nowrap: bool) -> list[str]:
    """The equations of a display block, as Sphinx reads them: parts separated by blank
    lines, a part with line breaks (``\\\\``) aligned at its ``&`` marks."""
    if nowrap:
        return [latex]
    parts = [part.strip() for part in latex.split("\n\n") if part.strip()]
    return [
        f"\\begin{{split}}{part}\\end{{split}}" if "\\\\" in part or "&" in part else part
        for part in parts
    ]


def _visit_block(self: HTML5Translator, node: nodes.math_block) -> None:
    number = f'<span class="eqno">({node["number"]})</span>' if node.get("number") else ""
    self.body.append(self.starttag(node, "div", CLASS="math notranslate mathml-block"))
    rendered = "".join(
        _convert(part, "block") for part in _equations(node.astext(), node.get("nowrap", False))
    )
    self.body.append(number + rendered + "</div>\n")
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_html_math_renderer("mathml", (_visit_inline, None), (_visit_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}

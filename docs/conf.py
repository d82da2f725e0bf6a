"""Sphinx configuration: MyST pages, the API reference from the docstrings, the evidence
tables generated from the committed results files, and maths rendered at build time."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")  # kl_schedules.keras is documented with JAX
DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS))

import _evidence  # noqa: E402

from kl_schedules import __version__  # noqa: E402

project = "kl_schedules"
author = "the kl_schedules authors"
copyright = "the kl_schedules authors, Apache-2.0"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "mathml",  # docs/_ext/mathml.py: MathML at build time, no script, no network
]
html_math_renderer = "mathml"
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "posterior_collapse/**", "_ext"]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections as fields of the class, so that an attribute that is also a
# documented property (autodoc :members:) is not described twice.
napoleon_use_ivar = True

# Furo: maintained, built-in offline search, readable code blocks, light and dark modes.
html_theme = "furo"
html_title = f"kl_schedules {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False

# The evidence and benchmark tables, generated from the committed JSON on every build.
_evidence.write_generated(DOCS / "_generated")

# Modules that other work adds: documented where they exist (api.md includes this file).
_OPTIONAL_MODULES = {
    "kl_schedules.diagnostics": "Posterior-collapse diagnostics",
    "kl_schedules.lightning": "PyTorch Lightning",
    "kl_schedules.numpyro": "NumPyro",
    "kl_schedules.pyro": "Pyro",
}
_parts = []
for _module, _title in _OPTIONAL_MODULES.items():
    if importlib.util.find_spec(_module) is None:
        continue
    _parts.append(
        f"## {_title}: `{_module}`\n\n```{{eval-rst}}\n.. automodule:: {_module}\n"
        "   :members:\n```\n"
    )
_api_extra = DOCS / "_generated" / "api_optional.md"
_api_text = "\n".join(_parts) if _parts else "<!-- no optional modules in this build -->\n"
if not _api_extra.exists() or _api_extra.read_text() != _api_text:
    _api_extra.write_text(_api_text)

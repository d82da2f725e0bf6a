"""Sphinx configuration: the API reference from the docstrings, and the Markdown pages."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")  # kl_schedules.keras is documented with JAX
sys.path.insert(0, os.path.abspath(".."))

from kl_schedules import __version__

project = "kl_schedules"
author = "the kl_schedules authors"
copyright = "the kl_schedules authors, Apache-2.0"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "posterior_collapse/**"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "alabaster"
html_static_path: list[str] = []

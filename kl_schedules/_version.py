"""The package version, in one place (pyproject.toml and ``--version`` read it)."""

__version__ = "0.2.0.dev0"

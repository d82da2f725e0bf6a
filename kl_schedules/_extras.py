"""Optional frameworks: the one rule for importing one in an adapter (a missing framework
raises an ``ImportError`` that names the extra to install)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

#: The note for adapters that need torch: how to install its CPU build.
CPU_TORCH = "for the CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu"


@contextlib.contextmanager
def requires_extra(adapter: str, framework: str, extra: str, note: str = "") -> Iterator[None]:
    """Imports inside the block that fail raise an ``ImportError`` naming the extra.

    Args:
      adapter: the adapter's module, e.g. ``"kl_schedules.torch"``.
      framework: what it needs, for the message, e.g. ``"PyTorch"``.
      extra: the package extra that installs it, e.g. ``"torch"``.
      note: more advice, shown in parentheses after the install command.

    Examples:
      >>> from kl_schedules._extras import requires_extra
      >>> try:
      ...     with requires_extra("kl_schedules.demo", "Demo", "demo"):
      ...         import kl_schedules_no_such_module
      ... except ImportError as error:
      ...     print(error)
      kl_schedules.demo needs Demo: pip install 'kl_schedules[demo]'
    """
    try:
        yield
    except ImportError as error:
        advice = f" ({note})" if note else ""
        raise ImportError(
            f"{adapter} needs {framework}: pip install 'kl_schedules[{extra}]'{advice}"
        ) from error

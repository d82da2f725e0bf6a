"""What the NumPyro and Pyro adapters share: checks of the sites, of fn, and of a run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kl_schedules._validation import ArgumentTypeError


def check_sites(sites: Any) -> tuple[str, ...]:
    """``sites`` as a tuple of distinct, non-empty site names, or a clear error."""
    if isinstance(sites, (str, bytes)):
        raise ArgumentTypeError(
            f"sites must be a sequence of sample-site names, got the string {sites!r}; "
            f"pass [{sites!r}]"
        )
    if not isinstance(sites, Sequence):
        raise ArgumentTypeError(
            f"sites must be a sequence (list or tuple) of sample-site names, "
            f"got {type(sites).__name__}: {sites!r}"
        )
    names = tuple(sites)
    if not names:
        raise ValueError("sites must name at least one sample site, got an empty sequence")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ArgumentTypeError(
                f"sites must hold non-empty strings (sample-site names), got "
                f"{type(name).__name__}: {name!r} in {sites!r}"
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"sites must be distinct, got {duplicates} more than once in {sites!r}")
    return names


def check_fn(fn: Any) -> None:
    """Raises unless ``fn`` is callable."""
    if not callable(fn):
        raise ArgumentTypeError(
            f"fn must be a callable model or guide, got {type(fn).__name__}: {fn!r}"
        )


def name_of(fn: Any) -> str:
    """A model's or guide's name for messages (a function's, or an object's type's)."""
    return str(getattr(fn, "__name__", type(fn).__name__))


def missing_beta(fn: Any, example: str) -> TypeError:
    """The error for a call of an annealed ``fn`` without ``beta``."""
    return TypeError(
        f"{name_of(fn)} was wrapped by annealed(...) and needs the keyword argument beta, "
        f"e.g. {example} (SVI passes it to the model and the guide)"
    )


def check_ran(fn: Any, sites: tuple[str, ...], ran: dict[str, None]) -> None:
    """Raises when a site of ``sites`` is not among the sample sites that ``ran`` (in
    order): a misspelt name would otherwise anneal nothing, silently."""
    missing = [name for name in sites if name not in ran]
    if missing:
        name = name_of(fn)
        raise ValueError(
            f"annealed({name}, sites={list(sites)}): no sample site named {missing} ran in "
            f"{name}; the sample sites that ran are {list(ran)}. Name only sites of this model or "
            f"guide (wrap the model and the guide separately, each with its own sites)"
        )

"""What the NumPyro and Pyro adapters share: checks of the sites, of fn and of a run, and
the wrapper that runs fn under a site-scaling handler."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
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


def wrap_annealed(
    fn: Any,
    sites: Any,
    *,
    check_beta: Callable[[Any], Any],
    handler: Callable[[frozenset[str], Any], Any],
    example: str,
) -> Callable[..., Any]:
    """``fn`` taking a keyword ``beta``, run under ``handler(site_names, beta)``.

    ``handler`` makes the framework's messenger, which records the sample sites that ran in
    its ``ran`` dict; ``check_beta`` validates beta in the framework's terms; ``example``
    shows a call with beta in the missing-beta error.
    """
    check_fn(fn)
    ordered = check_sites(sites)
    names = frozenset(ordered)

    @functools.wraps(fn, updated=())
    def annealed_fn(*args: Any, **kwargs: Any) -> Any:
        if "beta" not in kwargs:
            raise missing_beta(fn, example)
        scaling = handler(names, check_beta(kwargs.pop("beta")))
        with scaling:
            result = fn(*args, **kwargs)
        check_ran(fn, ordered, scaling.ran)
        return result

    return annealed_fn

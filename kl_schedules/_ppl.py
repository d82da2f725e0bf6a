"""What the NumPyro and Pyro adapters share: the ``annealed`` wrapper (its checks, its
site-scaling messenger's work and its docstring), written once for both frameworks."""

from __future__ import annotations

import functools
import string
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


class SiteScaling:
    """The work of a site-scaling messenger, mixed into each framework's ``Messenger``
    (``class _ScaleSites(SiteScaling, Messenger)``): records the sample sites that run, in
    order, and multiplies the scale of those in ``sites`` by ``beta`` (0 allowed)."""

    def __init__(self, sites: frozenset[str], beta: Any) -> None:
        super().__init__()
        self.sites = sites
        self.beta = beta
        self.ran: dict[str, None] = {}  # the sample sites met, in order

    def scale_site(self, msg: dict[str, Any]) -> None:
        """Records a sample site's message and scales it when it is one of ``sites``."""
        name = msg["name"]
        self.ran[name] = None
        if name in self.sites:
            scale = msg.get("scale")
            msg["scale"] = self.beta if scale is None else self.beta * scale


_ANNEALED_DOCSTRING = string.Template(
    r"""``fn`` (a $framework model or guide) with the log-densities of ``sites`` scaled by beta.

    The returned function takes the arguments of ``fn`` plus a keyword argument ``beta``
    (consumed, not passed on), and runs ``fn`` with every sample site named in ``sites``
    scaled by ``beta``; every other site is untouched. Wrapping both the model and the
    guide with the latent sites turns the ELBO into

    .. math::
        \mathcal{L}_\beta = \mathbb{E}_q\big[\log p(x \mid z)
            + \beta\,(\log p(z) - \log q(z))\big]
        = \text{recon} - \beta\,\mathrm{KL}(q \,\|\, p)

    (with ``TraceMeanField_ELBO`` the KL is analytic and scaled by the guide's scale, so
    wrap the guide too). Unlike ``$scale_handler``, ``beta = 0`` is allowed.$traced The
    scale multiplies any other scale of the site (a subsampled plate's
    ``size / subsample_size``).

    Args:
      fn: a model or guide ($fn_kinds).
      sites: a non-empty sequence of distinct sample-site names, e.g. ``["z"]``. Each must
        run in every call of ``fn``; a name that does not raises ``ValueError`` after the
        call (a misspelt name would otherwise anneal nothing).

    Returns:
      A function ``(*args, beta, **kwargs) -> fn(*args, **kwargs)``. ``beta`` is a finite
      real number >= 0$beta

    Raises:
      TypeError: (when called) ``beta`` is missing or not a real number.
      ValueError: (when called) ``beta`` is negative or not finite, or a site did not run.

    Examples:
$examples"""
)


def annealed_docstring(**parts: str) -> str:
    """The docstring of a framework's ``annealed``: one text, the contract of
    :func:`wrap_annealed`, with the framework's ``framework``, ``scale_handler``,
    ``fn_kinds``, ``traced`` (a note, or empty), ``beta`` and ``examples`` filled in."""
    return _ANNEALED_DOCSTRING.substitute(parts)

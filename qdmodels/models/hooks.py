"""Scoped model interventions: every hook or patched ``forward`` is removed in ``finally``.

* :class:`HookSet` registers forward / pre-forward hooks and removes all of them on exit.
* :func:`capture` records the outputs (or inputs) of named modules for the duration of a ``with`` block.
* :func:`patched_forward` temporarily replaces modules' ``forward`` (used by prefix caching to skip layers).
* :func:`count_hooks` counts hooks still attached to a model (tests assert it is zero afterwards).

Examples
--------
>>> import torch
>>> from qdmodels.models.hooks import capture, count_hooks
>>> lin = torch.nn.Linear(2, 2)
>>> with capture({"lin": lin}) as store:
...     _ = lin(torch.ones(1, 2))
>>> len(store["lin"]), count_hooks(lin)
(1, 0)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import torch

from qdstats.validation import check_option

__all__ = ["HookSet", "capture", "count_hooks", "detach_output", "patched_forward"]


def count_hooks(model: torch.nn.Module) -> int:
    """Number of forward, pre-forward and backward hooks attached to ``model`` or any submodule."""
    total = 0
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            d = getattr(m, attr, None)
            total += len(d) if d is not None else 0
    return total


class HookSet(contextlib.AbstractContextManager["HookSet"]):
    """A set of hooks that is removed as a whole when the ``with`` block exits (also on error).

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(2, 2)
    >>> seen = []
    >>> with HookSet() as hs:
    ...     hs.forward(lin, lambda mod, args, out: seen.append(out.shape))
    ...     _ = lin(torch.ones(3, 2))
    >>> seen, count_hooks(lin)
    ([torch.Size([3, 2])], 0)
    """

    def __init__(self) -> None:
        self._handles: list[Any] = []

    def forward(self, module: torch.nn.Module, fn: Callable[..., Any], *, with_kwargs: bool = False) -> None:
        """Register ``fn(module, args, output)`` (or ``fn(module, args, kwargs, output)``)."""
        self._handles.append(module.register_forward_hook(fn, with_kwargs=with_kwargs))

    def pre(self, module: torch.nn.Module, fn: Callable[..., Any], *, with_kwargs: bool = False) -> None:
        """Register ``fn(module, args)`` (or ``fn(module, args, kwargs)``) before ``forward``."""
        self._handles.append(module.register_forward_pre_hook(fn, with_kwargs=with_kwargs))

    def remove(self) -> None:
        """Remove every registered hook (idempotent)."""
        while self._handles:
            self._handles.pop().remove()

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def detach_output(out: Any) -> Any:
    """Clone the tensor(s) of a module output so later in-place ops cannot change what was stored."""
    if isinstance(out, torch.Tensor):
        return out.detach().clone()
    if isinstance(out, tuple):
        return tuple(detach_output(o) for o in out)
    if isinstance(out, list):
        return [detach_output(o) for o in out]
    return out


@contextlib.contextmanager
def capture(
    modules: Mapping[str, torch.nn.Module],
    *,
    what: Literal["output", "input"] = "output",
    transform: Callable[[torch.Tensor], Any] | None = None,
) -> Iterator[dict[str, list[Any]]]:
    """Record what named modules emit (or receive) while the block runs; hooks are removed on exit.

    Parameters
    ----------
    modules : mapping name -> module
        Modules to watch (e.g. from ``site_map(model).layers``).
    what : {'output', 'input'}, default 'output'
        Record the module's output, or its first positional input.
    transform : callable, optional
        Applied to the tensor before storing (e.g. a streaming statistic that returns nothing); by default
        the tensor is cloned. For outputs that are tuples, the first element is used.

    Yields
    ------
    dict
        name -> list of stored values, one per call.

    Raises
    ------
    ValueError
        Unknown ``what``.
    """
    check_option(what, "what", ("output", "input"))
    store: dict[str, list[Any]] = {name: [] for name in modules}
    with HookSet() as hs:
        for name, mod in modules.items():
            def _keep(x: Any, _name: str = name) -> None:
                if isinstance(x, (tuple, list)):
                    x = x[0]
                store[_name].append(transform(x) if transform is not None else detach_output(x))

            if what == "output":
                hs.forward(mod, lambda m, a, o, _k=_keep: _k(o))
            else:
                hs.pre(mod, lambda m, a, _k=_keep: _k(a[0] if a else None))
        yield store


@contextlib.contextmanager
def patched_forward(patches: Mapping[torch.nn.Module, Callable[..., Any]]) -> Iterator[None]:
    """Temporarily replace ``module.forward`` for each module (restored in ``finally``).

    Hooks registered on a patched module still run (``nn.Module.__call__`` calls the instance attribute).
    """
    patched: list[torch.nn.Module] = []
    try:
        for mod, fn in patches.items():
            if "forward" in mod.__dict__:
                raise RuntimeError(f"module {type(mod).__name__} already has a patched forward; nested patching is not supported.")
            mod.forward = fn  # type: ignore[method-assign]
            patched.append(mod)
        yield
    finally:
        for mod in patched:
            del mod.forward

"""Registry of claim tests: named statistical procedures that a claim spec refers to by name.

A *claim test* takes the tidy frame of records selected for a claim (one row per record, with a ``role``
column naming the selection each row came from) and the claim's validated parameters, and returns a
:class:`~qdstats.results.StatResult`. Tests are registered under a unique name with a pydantic model of their
parameters, so that ``qd claims validate`` can check a spec's ``params`` without running anything.

Usage (this docstring is the guide, as in lm-eval's ``api/registry.py``)::

    from pydantic import BaseModel
    from qdstats.claims.registry import ClaimContext, register_test

    class MyParams(BaseModel):
        model_config = {"extra": "forbid"}
        column: str = "value"

    @register_test("my_test", params=MyParams, roles=("y",), description="...")
    def my_test(data, params: MyParams, ctx: ClaimContext) -> StatResult:
        ...

Unknown names raise :class:`~qdstats.validation.UnknownNameError` with a did-you-mean suggestion and the
registered names. The registry is thread-safe (one re-entrant lock guards every read and write), rejects a
second registration under the same name, and can be frozen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from qdstats.validation import UnknownNameError, did_you_mean
from qdstats.results import StatResult

__all__ = [
    "REGISTRY",
    "ClaimContext",
    "ClaimTest",
    "ClaimTestRegistry",
    "InsufficientDataError",
    "NoParams",
    "get_test",
    "list_tests",
    "register_test",
    "tests_markdown",
]


class InsufficientDataError(Exception):
    """Raised by a claim test when the data cannot answer the claim (too few levels, units or pairs).

    The engine turns it into the verdict ``insufficient_data`` with the exception text as the message.
    """


class NoParams(BaseModel):
    """Parameter model of a test that takes no parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ClaimContext:
    """Spec-level settings passed to every claim test (alongside its own ``params``).

    Attributes
    ----------
    claim_id : str
        The claim being tested (for messages).
    alternative : {'two-sided', 'less', 'greater'}
        Direction of the claim; tests compute p-values for it. Confidence intervals are always two-sided.
    confidence_level : float
        Nominal CI coverage.
    unit_of_analysis : str
        Column (or shorthand, see :func:`qdstats.claims.tests_builtin.resolve_column`) naming the unit.
    covariates : tuple of str
        Covariate names from the spec (roles or columns).
    n_resamples : int
        Resamples for bootstrap / permutation procedures.
    seed : int
        Seed for every random procedure of the claim (results are reproducible).
    """

    claim_id: str
    alternative: str = "two-sided"
    confidence_level: float = 0.95
    unit_of_analysis: str = "item_id"
    covariates: tuple[str, ...] = ()
    n_resamples: int = 9999
    seed: int = 0


TestFunction = Callable[[pd.DataFrame, Any, ClaimContext], StatResult]
NarrowFunction = Callable[[pd.DataFrame, Any], pd.DataFrame]


@dataclass(frozen=True)
class ClaimTest:
    """A registered claim test."""

    name: str
    fn: TestFunction
    params_model: type[BaseModel]
    roles: tuple[str, ...] = ("y",)
    optional_roles: tuple[str, ...] = ()
    accepts_covariates: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    narrow: NarrowFunction | None = None

    def rows(self, data: pd.DataFrame, params: BaseModel) -> pd.DataFrame:
        """The rows of ``data`` the test can use under ``params`` (all of them when the test declares no ``narrow``).

        A test's ``narrow`` drops only rows the test itself would ignore (another model, another condition), so
        ``test(test.rows(data, p), p, ctx)`` equals ``test(data, p, ctx)``; callers that run one test many times on
        re-derived values of the same rows (the specification curve) narrow once and skip the repeated scans.
        """
        return data if self.narrow is None else self.narrow(data, params)

    def validate_params(self, params: dict[str, Any] | None) -> BaseModel:
        """Validate a spec's ``params`` mapping with this test's parameter model."""
        return self.params_model.model_validate(dict(params or {}))

    def __call__(self, data: pd.DataFrame, params: BaseModel, ctx: ClaimContext) -> StatResult:
        return self.fn(data, params, ctx)


class ClaimTestRegistry:
    """Thread-safe registry of :class:`ClaimTest` objects, keyed by name."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tests: dict[str, ClaimTest] = {}
        self._frozen = False

    def register(
        self,
        name: str,
        *,
        params: type[BaseModel] = NoParams,
        roles: tuple[str, ...] = ("y",),
        optional_roles: tuple[str, ...] = (),
        accepts_covariates: bool = False,
        description: str = "",
        narrow: NarrowFunction | None = None,
    ) -> Callable[[TestFunction], TestFunction]:
        """Decorator registering ``fn`` under ``name``.

        ``narrow`` (optional) is ``(data, params) -> data`` returning the rows the test can use, and only rows the
        test itself would ignore may be dropped (see :meth:`ClaimTest.rows`).

        Raises
        ------
        ValueError
            ``name`` empty or already registered, or the registry is frozen.
        TypeError
            ``params`` is not a pydantic model class.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"`name` must be a non-empty string; got {name!r}.")
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise TypeError(f"`params` must be a pydantic BaseModel subclass; got {params!r}.")

        def deco(fn: TestFunction) -> TestFunction:
            with self._lock:
                if self._frozen:
                    raise ValueError(f"the claim-test registry is frozen; cannot register {name!r}.")
                if name in self._tests:
                    raise ValueError(f"a claim test named {name!r} is already registered.")
                self._tests[name] = ClaimTest(
                    name=name, fn=fn, params_model=params, roles=tuple(roles), optional_roles=tuple(optional_roles),
                    accepts_covariates=accepts_covariates, description=description or (fn.__doc__ or "").strip().split("\n")[0],
                    narrow=narrow,
                )
            return fn

        return deco

    def unregister(self, name: str) -> None:
        """Remove a test (for tests of the registry; refused when frozen)."""
        with self._lock:
            if self._frozen:
                raise ValueError("the claim-test registry is frozen.")
            self._tests.pop(name, None)

    def get(self, name: str) -> ClaimTest:
        """Look up a test; unknown names raise :class:`UnknownNameError` with suggestions."""
        with self._lock:
            try:
                return self._tests[name]
            except (KeyError, TypeError):
                names = sorted(self._tests)
        raise UnknownNameError(
            f"`test` must be a registered claim test; got {name!r}.{did_you_mean(str(name), names)} "
            f"Registered tests ({len(names)}): {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}."
        )

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        with self._lock:
            return tuple(sorted(self._tests))

    def freeze(self) -> None:
        """Refuse further registrations."""
        with self._lock:
            self._frozen = True

    @property
    def frozen(self) -> bool:
        with self._lock:
            return self._frozen

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._tests

    def __len__(self) -> int:
        with self._lock:
            return len(self._tests)


REGISTRY = ClaimTestRegistry()
"""The package-wide registry; the built-in tests register into it on first use."""

_BUILTINS_LOADED = False
_BUILTINS_LOCK = threading.Lock()


def _ensure_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    with _BUILTINS_LOCK:
        if not _BUILTINS_LOADED:
            import qdstats.claims.tests_builtin  # noqa: F401  (registers on import)

            _BUILTINS_LOADED = True


def register_test(
    name: str,
    *,
    params: type[BaseModel] = NoParams,
    roles: tuple[str, ...] = ("y",),
    optional_roles: tuple[str, ...] = (),
    accepts_covariates: bool = False,
    description: str = "",
    narrow: NarrowFunction | None = None,
) -> Callable[[TestFunction], TestFunction]:
    """Register a claim test in the package registry (decorator); see the module docstring."""
    return REGISTRY.register(
        name, params=params, roles=roles, optional_roles=optional_roles,
        accepts_covariates=accepts_covariates, description=description, narrow=narrow,
    )


def get_test(name: str) -> ClaimTest:
    """Look up a registered claim test by name (built-ins are loaded on first use).

    Raises
    ------
    UnknownNameError
        Unknown name, with a did-you-mean suggestion and the registered names.
    """
    _ensure_builtins()
    return REGISTRY.get(name)


def list_tests() -> dict[str, str]:
    """Registered test names with their one-line descriptions."""
    _ensure_builtins()
    return {n: REGISTRY.get(n).description for n in REGISTRY.names()}


def tests_markdown() -> str:
    """Markdown table of the registered claim tests (name, roles, covariates, parameters, description)."""
    _ensure_builtins()
    lines = ["| test | roles (optional) | covariates | parameters | what it estimates |", "|---|---|---|---|---|"]
    for name in REGISTRY.names():
        t = REGISTRY.get(name)
        roles = ", ".join(t.roles) + (f" ({', '.join(t.optional_roles)})" if t.optional_roles else "")
        params = ", ".join(f"`{k}`" + ("" if f.is_required() else "?") for k, f in t.params_model.model_fields.items())
        lines.append(f"| `{name}` | {roles} | {'yes' if t.accepts_covariates else 'no'} | {params or '—'} | {t.description} |")
    return "\n".join(lines) + "\n"

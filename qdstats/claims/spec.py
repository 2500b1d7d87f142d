"""Claim specifications: versioned YAML files validated by pydantic.

A claim spec says, declaratively, which records to select (by quantity and filters), the unit of analysis,
the registered test and its parameters, the direction of the claim, the decision rule, the multiplicity
family and the provenance class of the evidence. The format is documented in ``docs/claims-engine.md``.

Two file-level keys are resolved when loading, before validation:

``include``
    A path (or list of paths) relative to the including file. The included mappings are merged first
    (deep merge; later includes override earlier ones) and the including file overrides them. This makes
    variants cheap: ``H1_int3.yaml`` includes ``H1_int4.yaml`` and changes the condition.
``for_each``
    A mapping ``{param: [v1, v2, ...], ...}``: the spec is expanded into one claim per value (the product
    of the lists for several keys), with ``params[param] = value``, the id suffixed ``.<value>`` and
    ``{param}`` in ``statement`` replaced.

Files whose name starts with ``_`` are include-only fragments and are skipped when a directory is loaded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from qdstats.options import Alternative
from qdstats.validation import did_you_mean
from qdstats.claims.registry import get_test
from qdstats.quantities import get_quantity

__all__ = [
    "ClaimSpec",
    "Decision",
    "EvidenceClass",
    "Selection",
    "SpecError",
    "expand_spec",
    "load_spec_file",
    "load_specs",
    "spec_fields_markdown",
    "spec_from_dict",
]

EvidenceClass = Literal["measured", "literature", "simulated"]
AdjustOption = Literal["holm", "fdr_bh", "bonferroni", "none"]
Scalar = bool | int | float | str | None
FilterValue = Scalar | list[Scalar] | dict[str, Scalar | list[Scalar]]

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class SpecError(ValueError):
    """A claim spec that cannot be loaded or validated; the message starts with the file (and claim id)."""


def _listify(v: Any) -> Any:
    if v is None or isinstance(v, list):
        return v
    if isinstance(v, tuple):
        return list(v)
    return [v]


class Selection(BaseModel):
    """Which records feed one role (``y``, ``x``, a covariate...) of a claim.

    Every given filter must match; a list means "any of". ``condition`` / ``attributes`` filters compare
    with the record's ``condition`` / ``attributes`` values; ``null`` matches records without the key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantity: str = Field(description="Registered quantity name, e.g. 'eval.bits_per_byte'.")
    model: list[str] | None = Field(default=None, description="ModelRef.model_id value(s).")
    language: list[str] | None = Field(default=None, description="Language code(s), e.g. 'heb_Hebr'.")
    site: list[str] | None = Field(default=None, description="Exact site name(s).")
    site_regex: str | None = Field(default=None, description="Regular expression the site must fully match.")
    split: list[str] | None = Field(default=None, description="CorpusRef.split value(s), e.g. 'test'.")
    corpus: list[str] | None = Field(default=None, description="CorpusRef.corpus_id value(s).")
    condition: dict[str, FilterValue] = Field(default_factory=dict, description="Condition filters.")
    attributes: dict[str, FilterValue] = Field(default_factory=dict, description="Attribute filters.")
    n: list[int] | None = Field(default=None, description=(
        "Record ``n`` value(s): how many items a summary record aggregates (e.g. 96 dev sentences per layer and "
        "language in a sensitivity sweep), so two sweeps of different sizes are never mixed."))

    @field_validator("model", "language", "site", "split", "corpus", "n", mode="before")
    @classmethod
    def _as_list(cls, v: Any) -> Any:
        return _listify(v)

    @model_serializer(mode="wrap")
    def _omit_unset_n(self, handler: Any) -> dict[str, Any]:
        # ``n`` came after specs were hashed: leaving it out when unset keeps every earlier spec hash unchanged.
        out = handler(self)
        if out.get("n") is None:
            out.pop("n", None)
        return out

    @field_validator("quantity")
    @classmethod
    def _known_quantity(cls, v: str) -> str:
        get_quantity(v)  # UnknownNameError (a ValueError) with suggestions
        return v

    @field_validator("site_regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"`site_regex` is not a valid regular expression ({exc}); got {v!r}.") from None
        return v


class Decision(BaseModel):
    """The decision rule that maps a test result to a verdict (see ``docs/claims-engine.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.05, gt=0.0, lt=1.0, description="Level for the family-adjusted p-value.")
    ci_excludes: float = Field(default=0.0, description="Null value the CI must exclude (0 for differences, 1 for ratios).")
    min_abs_effect: float = Field(default=0.0, ge=0.0, description="Smallest effect |estimate - ci_excludes| that matters (equivalence margin).")
    min_n: int = Field(default=3, ge=1, description="Fewer units of analysis than this gives 'insufficient_data'.")


class ClaimSpec(BaseModel):
    """One claim: what is asserted, how the evidence is selected and tested, and how it is decided.

    Examples
    --------
    >>> spec = ClaimSpec.model_validate({
    ...     "id": "demo.did", "version": 1, "statement": "INT4 hurts Hebrew more than English",
    ...     "family": "demo", "select": {"y": {"quantity": "eval.bits_per_byte"}},
    ...     "unit_of_analysis": "item_id", "test": "diff_in_diff",
    ...     "params": {"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"}, "target": "heb_Hebr"},
    ...     "alternative": "greater"})
    >>> spec.decision.alpha
    0.05
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_name: Literal["qd.claim"] = Field(default="qd.claim", description="Self-identifying schema name.")
    schema_version: Literal[1] = Field(default=1, description="Version of the spec format.")
    id: str = Field(pattern=_ID_PATTERN, description="Unique claim id, e.g. 'H1.int4.heb_Hebr'.")
    version: int = Field(ge=1, description="Version of this claim; bump when its meaning changes.")
    statement: str = Field(min_length=1, description="The claim in words.")
    family: str = Field(min_length=1, description="Multiplicity family: p-values are adjusted within it.")
    select: dict[str, Selection] = Field(description="Record selection per role ('y', 'x', covariate roles...).")
    unit_of_analysis: str = Field(description="Unit the test counts (column name or shorthand: 'item_id', 'language', 'site', 'model').")
    test: str = Field(description="Registered claim-test name (see qdstats.claims.list_tests()).")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the test (validated by its model).")
    covariates: tuple[str, ...] = Field(default=(), description="Covariates (roles or columns), for tests that accept them.")
    alternative: Alternative = Field(default="two-sided", description="Direction of the claim.")
    confidence_level: float = Field(default=0.95, gt=0.0, lt=1.0, description="Nominal two-sided CI coverage.")
    decision: Decision = Field(default_factory=Decision, description="Decision rule.")
    adjust: AdjustOption = Field(default="holm", description="Multiplicity adjustment within the family.")
    evidence: EvidenceClass = Field(default="measured", description="Provenance class of the evidence.")
    test_split: str | None = Field(default=None, description="Split the claim is tested on (defaults to the selections' split when they agree).")
    selection_split: str | None = Field(default=None, description="Split on which anything in the claim (layers, thresholds) was chosen; None if nothing was selected from data.")
    specifications: Literal["none", "units"] = Field(
        default="none", description="'units': re-test the claim under every pre-declared unit of damage (bits per byte, "
        "per character, per sentence, per English byte, relative change) with the first token in and out "
        "(qdstats.claims.speccurve) and report how many agree; a verdict that flips costs a grade.")
    n_resamples: int = Field(default=9999, ge=99, description="Bootstrap / permutation resamples.")
    seed: int = Field(default=0, ge=0, description="Seed of every random procedure of the claim.")
    references: tuple[str, ...] = Field(default=(), description="Citations (DOI / URL / section).")
    seed_claim: str | None = Field(default=None, description="What the seed repository claimed, quoted.")
    audit: str | None = Field(default=None, description="Section of the seed audit that discusses the seed claim.")
    notes: str | None = Field(default=None, description="Caveats shown with the claim.")
    produced_by: tuple[str, ...] = Field(default=(), description="Commands (or library routines) that produce the claim's records.")

    @field_validator("select")
    @classmethod
    def _non_empty(cls, v: dict[str, Selection]) -> dict[str, Selection]:
        if not v:
            raise ValueError("`select` must name at least one role, e.g. {'y': {'quantity': ...}}.")
        return {k: v[k] for k in sorted(v)}

    @model_validator(mode="after")
    def _check_test(self) -> ClaimSpec:
        test = get_test(self.test)
        try:
            test.validate_params(self.params)
        except ValidationError as exc:
            raise ValueError(f"`params` invalid for test {self.test!r}: {_format_errors(exc)}") from None
        missing = [r for r in test.roles if r not in self.select]
        if missing:
            raise ValueError(
                f"`select` must define role(s) {missing} for test {self.test!r}; got roles {list(self.select)}."
            )
        allowed = set(test.roles) | set(test.optional_roles) | set(self.covariates)
        extra = [r for r in self.select if r not in allowed]
        if extra:
            raise ValueError(
                f"`select` has role(s) {extra} that test {self.test!r} does not use; allowed: {sorted(allowed)}."
            )
        if self.covariates and not test.accepts_covariates:
            raise ValueError(f"`covariates` are not accepted by test {self.test!r}; got {list(self.covariates)}.")
        extra_check = getattr(test.params_model, "check_spec", None)
        if callable(extra_check):
            extra_check(self)
        return self

    @property
    def effective_test_split(self) -> str | None:
        """``test_split`` or, when every selection names the same single split, that split."""
        if self.test_split is not None:
            return self.test_split
        splits = {tuple(s.split) for s in self.select.values() if s.split}
        if len(splits) == 1:
            only = next(iter(splits))
            if len(only) == 1:
                return only[0]
        return None

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON of the validated spec (includes resolved, variants expanded)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, allow_nan=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- loading
def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(spec)"
        msg = err["msg"]
        msg = msg.removeprefix("Value error, ")
        inp = err.get("input")
        text = f"`{loc}`: {msg}"
        if err["type"] == "extra_forbidden":
            field = str(err["loc"][-1])
            model = ClaimSpec if len(err["loc"]) == 1 else (Selection if "select" in err["loc"] else Decision)
            text += f" (unknown key {field!r}.{did_you_mean(field, model.model_fields)})"
        elif err["type"] not in ("value_error",) and not isinstance(inp, (dict, list)):
            text += f" (got {inp!r})"
        parts.append(text)
    return "; ".join(parts)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc}).") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise SpecError(f"{path}:{line}: not UTF-8 text (byte {exc.start}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a claim spec must be a YAML mapping; got {type(data).__name__}.")
    return data


def _resolve_includes(path: Path, stack: tuple[Path, ...] = ()) -> tuple[dict[str, Any], tuple[Path, ...]]:
    """Raw mapping of ``path`` with its includes merged; also returns every file read (for hashing)."""
    path = path.resolve()
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack, path))
        raise SpecError(f"{path}: `include` cycle: {chain}.")
    data = _read_yaml(path)
    inc = data.pop("include", None)
    files: tuple[Path, ...] = (path,)
    if inc is None:
        return data, files
    inc_list = [inc] if isinstance(inc, str) else inc
    if not isinstance(inc_list, list) or not all(isinstance(i, str) for i in inc_list):
        raise SpecError(f"{path}: `include` must be a path or a list of paths; got {inc!r}.")
    merged: dict[str, Any] = {}
    for rel in inc_list:
        target = (path.parent / rel)
        if not target.exists():
            raise SpecError(f"{path}: `include` file not found: {rel!r} (looked in {path.parent}).")
        sub, sub_files = _resolve_includes(target, (*stack, path))
        merged = _deep_merge(merged, sub)
        files = files + sub_files
    return _deep_merge(merged, data), files


def _id_part(v: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", str(v)).strip("-") or "x"


def expand_spec(raw: dict[str, Any], *, where: str = "<spec>") -> list[dict[str, Any]]:
    """Expand a raw mapping's ``for_each`` into one mapping per combination of values.

    ``for_each: {param: [v1, v2]}`` gives one claim per value; several keys give their product (in the
    order written). Each claim gets ``params[param] = value``, its id suffixed ``.<value>`` (characters
    outside ``[A-Za-z0-9_.-]`` replaced by ``-``) and ``{param}`` in ``statement`` replaced.
    Without ``for_each`` the result is a list of one.
    """
    import itertools

    raw = dict(raw)
    fe = raw.pop("for_each", None)
    if fe is None:
        return [raw]
    if not isinstance(fe, dict) or not fe:
        raise SpecError(f"{where}: `for_each` must be a mapping {{param: [values...]}}; got {fe!r}.")
    for key, values in fe.items():
        if not isinstance(values, list) or not values:
            raise SpecError(f"{where}: `for_each.{key}` must be a non-empty list; got {values!r}.")
        if len({_id_part(v) for v in values}) != len(values):
            raise SpecError(f"{where}: `for_each.{key}` has duplicate values: {values!r}.")
    out = []
    keys = list(fe)
    for combo in itertools.product(*(fe[k] for k in keys)):
        d = copy.deepcopy(raw)
        params = dict(d.get("params") or {})
        for key, v in zip(keys, combo):
            params[key] = v
            if isinstance(d.get("statement"), str):
                d["statement"] = d["statement"].replace("{" + key + "}", str(v))
        d["params"] = params
        d["id"] = ".".join([str(d.get("id", ""))] + [_id_part(v) for v in combo])
        out.append(d)
    return out


def spec_from_dict(raw: dict[str, Any], *, where: str = "<spec>") -> list[ClaimSpec]:
    """Validate a raw mapping (``for_each`` expanded; ``include`` must already be resolved)."""
    if "include" in raw:
        raise SpecError(f"{where}: `include` is only resolved when loading from a file.")
    specs = []
    for d in expand_spec(raw, where=where):
        try:
            specs.append(ClaimSpec.model_validate(d))
        except ValidationError as exc:
            cid = d.get("id", "?")
            raise SpecError(f"{where}: claim {cid!r}: {_format_errors(exc)}") from None
        except ValueError as exc:  # UnknownNameError from validators outside pydantic's wrapping
            raise SpecError(f"{where}: claim {d.get('id', '?')!r}: {exc}") from None
    return specs


def load_spec_file(path: str | Path) -> list[ClaimSpec]:
    """Load one YAML spec file (includes resolved, ``for_each`` expanded).

    Raises
    ------
    SpecError
        Unreadable file, invalid YAML, include cycle or missing include, or a validation error; the
        message starts with the file name and the claim id and names the offending key in backticks.
    """
    p = Path(path)
    raw, _ = _resolve_includes(p)
    return spec_from_dict(raw, where=str(path))


def spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories into the list of spec files (directories: ``*.yaml``/``*.yml``,
    recursively, sorted, skipping include-only fragments named ``_*``)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and not q.name.startswith("_"))
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise SpecError(f"{p}: no such spec file or directory.")
    return out


def load_specs(paths: Sequence[str | Path] | str | Path) -> list[ClaimSpec]:
    """Load spec files and directories; check ids are unique and each family uses one adjustment.

    Raises
    ------
    SpecError
        Any file's error, a duplicate claim id, or a family whose claims disagree on ``adjust``.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    specs: list[ClaimSpec] = []
    seen: dict[str, str] = {}
    for f in spec_files(paths):
        for s in load_spec_file(f):
            if s.id in seen:
                raise SpecError(f"{f}: duplicate claim id {s.id!r} (first defined in {seen[s.id]}).")
            seen[s.id] = str(f)
            specs.append(s)
    check_families(specs)
    return specs


def check_families(specs: Sequence[ClaimSpec]) -> None:
    """Every claim of a family must use the same ``adjust`` method and ``decision.alpha``."""
    fam: dict[str, tuple[str, float, str]] = {}
    for s in specs:
        key = (s.adjust, s.decision.alpha, s.id)
        if s.family in fam and fam[s.family][:2] != key[:2]:
            other = fam[s.family]
            raise SpecError(
                f"family {s.family!r}: claims {other[2]!r} and {s.id!r} disagree on `adjust`/`decision.alpha` "
                f"({other[0]!r}, {other[1]} vs {s.adjust!r}, {s.decision.alpha}); a family is adjusted together."
            )
        fam.setdefault(s.family, key)


def spec_fields_markdown() -> str:
    """Markdown tables of the spec fields (``ClaimSpec``, ``Selection``, ``Decision``), from the models' own
    field descriptions (embedded verbatim in ``docs/claims-engine.md``; a test keeps them in sync)."""
    out = []
    for model in (ClaimSpec, Selection, Decision):
        out.append(f"**`{model.__name__}`**\n")
        out.append("| key | required | default | meaning |")
        out.append("|---|---|---|---|")
        for name, f in model.model_fields.items():
            req = "yes" if f.is_required() else "no"
            if f.is_required():
                default = ""
            elif f.default_factory is not None:
                default = f"`{f.default_factory()!r}`" if model is not ClaimSpec or name != "decision" else "see `Decision`"
            else:
                default = f"`{f.default!r}`"
            out.append(f"| `{name}` | {req} | {default} | {f.description or ''} |")
        out.append("")
    return "\n".join(out)

"""Specification curve: one claim re-tested under every pre-declared unit of damage (issue 15).

A claim about per-sentence damage (e.g. H1's difference in differences of bits per byte) depends on how damage is
counted. :func:`specification_curve` derives the claim's per-item values under each :class:`Specification` from the
raw per-item records (``eval.nll_sum``, ``eval.n_bytes``, ``eval.n_chars``, ``eval.nll_first``), runs the claim's own
registered test with the claim's own parameters on each, decides each verdict with the claim's decision rule, and
summarizes how many specifications agree with the primary one.

Units (per item; ``nll`` in nats, minus ``eval.nll_first`` when ``first_token='out'``):

``bits_per_byte``          ``nll / ln 2 / n_bytes``
``bits_per_char``          ``nll / ln 2 / n_chars`` (code points)
``bits_per_sentence``      ``nll / ln 2`` (parallel items: the same content in every language)
``bits_per_english_byte``  ``nll / ln 2 / n_bytes(reference language, same item)`` (paired by ``item_id``)
``relative_change``        ``ln(nll)``; a compressed-minus-full difference is then ``ln(nll_c / nll_f)``, the log
                           ratio of the damage (unit-free; the length cancels, so it is the same for bytes,
                           characters and sentences)

With ``first_token='out'`` the denominators are unchanged (the first token's bytes are not known from the records).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from qdstats.claims.registry import ClaimContext, InsufficientDataError, get_test
from qdstats.claims.spec import ClaimSpec, Decision
from qdstats.validation import check_option

__all__ = [
    "DEFAULT_SPECIFICATIONS",
    "FirstToken",
    "Specification",
    "SpecificationCurve",
    "SpecificationRow",
    "Unit",
    "derive_unit",
    "specification_curve",
]

Unit = Literal["bits_per_byte", "bits_per_char", "bits_per_sentence", "bits_per_english_byte", "relative_change"]
FirstToken = Literal["in", "out"]
UNITS: tuple[str, ...] = ("bits_per_byte", "bits_per_char", "bits_per_sentence", "bits_per_english_byte",
                          "relative_change")
_NEEDS = {"bits_per_byte": ("eval.n_bytes",), "bits_per_char": ("eval.n_chars",), "bits_per_sentence": (),
          "bits_per_english_byte": ("eval.n_bytes",), "relative_change": ()}
_LN2 = math.log(2.0)


class Specification(BaseModel):
    """One pre-declared way of counting damage: a unit and whether the first scored token counts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: Unit = Field(default="bits_per_byte", description="Unit of damage (see the module docstring).")
    first_token: FirstToken = Field(default="in", description="'out' subtracts eval.nll_first from each item's NLL.")
    min_abs_effect: float | None = Field(
        default=None, ge=0.0,
        description="Margin in this unit; None scales the claim's margin by the reference language's degradation "
                    "in this unit relative to the primary unit (the same fraction of the reference's damage).")

    @property
    def id(self) -> str:
        return f"{self.unit}/first_{self.first_token}"


DEFAULT_SPECIFICATIONS: tuple[Specification, ...] = tuple(
    Specification(unit=u, first_token=f) for u in UNITS for f in ("in", "out"))  # type: ignore[arg-type]


class SpecificationRow(BaseModel):
    """The claim's result under one specification (full precision)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specification: str
    unit: str
    first_token: str
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    p_adj: float | None = None
    min_abs_effect: float | None = None
    n: int | None = None
    n_dropped: int = 0
    verdict: str = "error"
    reason: str = ""
    agrees: bool | None = None


class SpecificationCurve(BaseModel):
    """Result of :func:`specification_curve`: one row per specification and a summary."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    claim_id: str
    primary: str
    primary_verdict: str
    rows: tuple[SpecificationRow, ...]
    n_specifications: int
    n_agree: int
    robust: bool | None = Field(description="True: every specification gives the primary verdict; False: at least one "
                                            "differs; None: none differs but some could not be computed.")

    def to_frame(self) -> pd.DataFrame:
        """One row per specification plus a final ``summary`` row (``n_agree`` of ``n_specifications``)."""
        df = pd.DataFrame([r.model_dump() for r in self.rows])
        summary = {c: None for c in df.columns}
        summary.update(specification="summary", verdict=self.primary_verdict,
                       reason=f"{self.n_agree} of {self.n_specifications} specifications agree with the primary "
                              f"({self.primary}); robust={self.robust}", agrees=self.robust)
        df = pd.concat([df, pd.DataFrame([summary])], ignore_index=True)
        for c in ("estimate", "ci_low", "ci_high", "p", "p_adj", "min_abs_effect"):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        return df


# ----------------------------------------------------------------------------- units
def _key_cols(frame: pd.DataFrame) -> list[str]:
    return [c for c in ("model.model_id", "language", "item_id") if c in frame.columns] + sorted(
        c for c in frame.columns if str(c).startswith("condition."))


def derive_unit(frame: pd.DataFrame, spec: Specification, *, reference: str = "eng_Latn") -> pd.DataFrame:
    """Per-item values of ``spec`` from a tidy records frame (:func:`qdstats.records.to_frame` columns).

    Parameters
    ----------
    frame : pandas.DataFrame
        Records holding ``eval.nll_sum`` and whatever the unit needs (``eval.n_bytes``, ``eval.n_chars``,
        ``eval.nll_first`` for ``first_token='out'``), keyed by model, language, item and ``condition.*``.
    spec : Specification
        The unit and first-token rule.
    reference : str, default 'eng_Latn'
        Language whose byte length divides ``bits_per_english_byte``.

    Returns
    -------
    pandas.DataFrame
        The ``eval.nll_sum`` rows with ``value`` replaced by the derived value and ``quantity`` set to
        ``spec.<unit>``; rows lacking an input are dropped (``attrs['n_dropped']`` counts them).

    Raises
    ------
    ValueError
        ``spec.unit`` / ``spec.first_token`` not allowed; no ``eval.nll_sum`` rows; for ``bits_per_english_byte``,
        the reference language's ``eval.n_bytes`` of one item differs between conditions.
    """
    check_option(spec.unit, "spec.unit", UNITS)
    check_option(spec.first_token, "spec.first_token", ("in", "out"))
    return _UnitInputs(frame, reference).derive(spec)


class _UnitInputs:
    """The per-item lookups every unit is derived from, built once per frame (a specification curve derives ten
    units from the same rows; each lookup is a scan of the frame)."""

    def __init__(self, frame: pd.DataFrame, reference: str) -> None:
        self.frame, self.reference = frame, reference
        self.keys = _key_cols(frame)
        base = frame[frame["quantity"] == "eval.nll_sum"].copy()
        if base.empty:
            raise ValueError("`frame` has no `eval.nll_sum` records; every unit is derived from them.")
        self.base = base
        self.kf = base[self.keys].astype(object).where(base[self.keys].notna(), "<none>")
        self.idx = pd.MultiIndex.from_frame(self.kf)
        self.nll = pd.Series(base["value"].to_numpy(float), index=self.idx)
        self._q: dict[str, pd.Series] = {}
        self._eb: pd.Series | None = None

    def q(self, name: str) -> pd.Series:
        """``name``'s value for each ``eval.nll_sum`` row (same model, language, item and condition); NaN if none."""
        if name not in self._q:
            sub = self.frame[self.frame["quantity"] == name]
            if sub.empty:
                self._q[name] = pd.Series(np.nan, index=self.idx)
            else:
                k = sub[self.keys].astype(object).where(sub[self.keys].notna(), "<none>")
                ser = pd.Series(sub["value"].to_numpy(float), index=pd.MultiIndex.from_frame(k))
                self._q[name] = ser[~ser.index.duplicated()].reindex(self.idx)
        return self._q[name]

    def english_bytes(self) -> pd.Series:
        """The reference language's ``eval.n_bytes`` of each row's item (one value per model and item)."""
        if self._eb is None:
            frame, reference, kf = self.frame, self.reference, self.kf
            sub = frame[(frame["quantity"] == "eval.n_bytes") & (frame["language"] == reference)]
            mcol = "model.model_id" if "model.model_id" in frame.columns else None
            grouped = sub.groupby([mcol, "item_id"] if mcol else ["item_id"])["value"]
            varying = grouped.nunique()
            if (varying > 1).any():
                bad = [str(k) for k in varying[varying > 1].index[:3]]
                raise ValueError(f"`eval.n_bytes` of the reference language {reference!r} differs between the "
                                 f"conditions of one item ({', '.join(bad)}); an item's byte length cannot depend on "
                                 "the condition, so the records do not describe the same text.")
            eb = grouped.first()
            look = list(zip(kf[mcol], kf["item_id"])) if mcol else list(kf["item_id"])
            self._eb = pd.Series(eb.reindex(look).to_numpy(float), index=self.idx)
        return self._eb

    def derive(self, spec: Specification) -> pd.DataFrame:
        """The ``eval.nll_sum`` rows with ``value`` in ``spec``'s unit (see :func:`derive_unit`)."""
        check_option(spec.unit, "spec.unit", UNITS)
        check_option(spec.first_token, "spec.first_token", ("in", "out"))
        nll = self.nll - self.q("eval.nll_first") if spec.first_token == "out" else self.nll
        bits = nll / _LN2
        if spec.unit == "bits_per_byte":
            val = bits / self.q("eval.n_bytes")
        elif spec.unit == "bits_per_char":
            val = bits / self.q("eval.n_chars")
        elif spec.unit == "bits_per_sentence":
            val = bits
        elif spec.unit == "relative_change":
            val = np.log(nll)
        else:
            val = bits / self.english_bytes()
        out = self.base.assign(value=val.to_numpy(float), quantity=f"spec.{spec.unit}")
        ok = np.isfinite(out["value"].to_numpy(float))
        res = out[ok].copy()
        res.attrs["n_dropped"] = int((~ok).sum())
        return res


# ----------------------------------------------------------------------------- the curve
def _reference(claim: ClaimSpec) -> str:
    return str(claim.params.get("reference", "eng_Latn"))


def _run(claim: ClaimSpec, inputs: _UnitInputs, spec: Specification) -> tuple[Any, int]:
    data = inputs.derive(spec)
    n_dropped = int(data.attrs.get("n_dropped", 0))
    test = get_test(claim.test)
    params = test.validate_params(claim.params)
    ctx = ClaimContext(claim_id=claim.id, alternative=claim.alternative, confidence_level=claim.confidence_level,
                       unit_of_analysis=claim.unit_of_analysis, covariates=tuple(claim.covariates),
                       n_resamples=claim.n_resamples, seed=claim.seed)
    # the test's own rows of the derived values (ClaimTest.rows: the same result, without re-scanning other models
    # and conditions once per specification)
    return test(test.rows(data.assign(role="y"), params), params, ctx), n_dropped


_CURVE_QUANTITIES = ("eval.nll_sum", "eval.n_bytes", "eval.n_chars", "eval.nll_first")


def curve_selections(claim: ClaimSpec) -> list[Any]:
    """The claim's ``y`` selection once per per-item quantity a specification is derived from."""
    sel = claim.select["y"]
    return [sel.model_copy(update={"quantity": qn}) for qn in _CURVE_QUANTITIES]


def _select(claim: ClaimSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Records matching the claim's ``y`` filters (any of the per-item quantities)."""
    from qdstats.claims.engine import _selection_mask

    mask = pd.Series(False, index=frame.index)
    for sel in curve_selections(claim):
        mask |= _selection_mask(frame, sel)
    return frame[mask]


def specification_curve(
    claim: ClaimSpec,
    specifications: Sequence[Specification] = DEFAULT_SPECIFICATIONS,
    records: pd.DataFrame | Sequence[Any] = (),
    *,
    primary: Specification = Specification(),
    family_size: int = 1,
    p_multiplier: float | None = None,
) -> SpecificationCurve:
    """Re-test one claim under each pre-declared specification and count how many agree with the primary.

    Parameters
    ----------
    claim : ClaimSpec
        The claim (its ``y`` selection filters, test, parameters, alternative and decision are reused).
    specifications : sequence of Specification
        The pre-declared specifications (default: every unit with the first token in and out).
    records : pandas.DataFrame or sequence of Measurement
        Per-item records (or their :func:`qdstats.records.to_frame`); only rows matching the claim's ``y``
        filters with quantity ``eval.nll_sum``, ``eval.n_bytes``, ``eval.n_chars`` or ``eval.nll_first`` are used.
    primary : Specification, keyword-only
        The specification whose verdict the others are compared with (added if not in the list).
    family_size : int, default 1
        Claims tested together with this one; ``p_adj = min(1, p * family_size)`` (Bonferroni).
    p_multiplier : float, optional
        Instead of ``family_size``: ``p_adj = min(1, p * p_multiplier)``. The claims engine passes the row's own
        ``p_adj / p`` (its Holm or BH factor), so the primary specification gets exactly the row's adjusted p.

    Returns
    -------
    SpecificationCurve
        One :class:`SpecificationRow` per specification (estimate, CI, p, p_adj, margin, verdict, agrees) and the
        summary (``n_agree``, ``robust``); ``.to_frame()`` adds a summary row.

    Raises
    ------
    ValueError
        ``family_size`` < 1.

    Notes
    -----
    Verdicts use :func:`qdstats.claims.engine.decide` with the claim's decision and a margin per specification:
    ``spec.min_abs_effect`` when given, else the claim's ``min_abs_effect`` times ``Δ_ref(spec) / Δ_ref(primary)``
    (the reference language's mean degradation under each; the same fraction of the reference's damage).
    ``robust`` is True only when every specification was computed and gives the primary verdict.
    Validated against: hand-computed values on a planted frame and a planted unit flip
    (tests/qdstats/claims/test_speccurve.py).

    Examples
    --------
    >>> from qdstats.claims.speccurve import Specification
    >>> Specification(unit="bits_per_sentence", first_token="out").id
    'bits_per_sentence/first_out'
    """
    from qdstats.claims.engine import decide
    from qdstats.records import to_frame

    if not isinstance(family_size, int) or family_size < 1:
        raise ValueError(f"`family_size` must be an integer >= 1; got {family_size!r}.")
    if p_multiplier is not None and not (isinstance(p_multiplier, (int, float)) and p_multiplier >= 1.0):
        raise ValueError(f"`p_multiplier` must be a number >= 1; got {p_multiplier!r}.")
    mult = float(family_size if p_multiplier is None else p_multiplier)
    frame = records if isinstance(records, pd.DataFrame) else to_frame(list(records))
    frame = _select(claim, frame)
    specs = list(specifications)
    if primary.id not in [s.id for s in specs]:
        specs.insert(0, primary)
    runs: dict[str, tuple[Any, int, str | None]] = {}
    try:
        inputs: _UnitInputs | None = _UnitInputs(frame, _reference(claim))
        no_inputs = ""
    except ValueError as exc:
        inputs, no_inputs = None, f"{type(exc).__name__}: {exc}"
    for s in specs:
        try:
            if inputs is None:
                raise ValueError(no_inputs)
            res, nd = _run(claim, inputs, s)
            runs[s.id] = (res, nd, None)
        except (InsufficientDataError, ValueError, KeyError) as exc:
            runs[s.id] = (None, 0, f"{type(exc).__name__}: {exc}")

    def dref(sid: str) -> float:
        r = runs[sid][0]
        return float(r.details.get("delta_reference", math.nan)) if r is not None else math.nan

    m0 = claim.decision.min_abs_effect
    rows: list[SpecificationRow] = []
    for s in specs:
        res, nd, err = runs[s.id]
        if res is None:
            rows.append(SpecificationRow(specification=s.id, unit=s.unit, first_token=s.first_token,
                                         verdict="insufficient_data", reason=err or ""))
            continue
        if s.min_abs_effect is not None:
            m = s.min_abs_effect
        else:
            ratio = dref(s.id) / dref(primary.id)
            m = m0 * abs(ratio) if np.isfinite(ratio) else m0
        p = res.pvalue
        p_adj = None if p is None or math.isnan(p) else min(1.0, p * mult)
        lo, hi = (res.ci.low, res.ci.high) if res.ci is not None else (None, None)
        v, why = decide(res.estimate, lo, hi, p_adj, Decision(**{**claim.decision.model_dump(), "min_abs_effect": m}),
                        claim.alternative)
        rows.append(SpecificationRow(specification=s.id, unit=s.unit, first_token=s.first_token,
                                     estimate=res.estimate, ci_low=lo, ci_high=hi, p=p, p_adj=p_adj, min_abs_effect=m,
                                     n=int(res.n), n_dropped=nd, verdict=v, reason=why))
    pv = next(r.verdict for r in rows if r.specification == primary.id)
    rows = [r.model_copy(update={"agrees": (r.verdict == pv) if r.verdict not in ("insufficient_data", "error") else None})
            for r in rows]
    n_agree = sum(r.agrees is True for r in rows)
    flips = any(r.agrees is False for r in rows)
    missing = any(r.agrees is None for r in rows)
    robust = False if flips else (None if missing else True)
    return SpecificationCurve(claim_id=claim.id, primary=primary.id, primary_verdict=pv, rows=tuple(rows),
                              n_specifications=len(rows), n_agree=n_agree, robust=robust)

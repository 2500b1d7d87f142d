"""Build a claims table: select records per claim, run its registered test, adjust p within families,
decide a verdict and grade it.

The pipeline for each :class:`~qdstats.claims.spec.ClaimSpec`:

1. **Select** records per role (quantity + filters), sorted by :meth:`Measurement.content_key` so that the
   result does not depend on record order; identical records (same content key) are counted once. A
   ``data_hash`` of the selected content keys identifies the evidence.
2. **Test**: the registered test gets the tidy frame and returns a :class:`~qdstats.results.StatResult`.
   An exception never aborts the table: :class:`InsufficientDataError` gives ``insufficient_data``,
   anything else gives ``error`` with the message. ``result.n < decision.min_n`` gives ``insufficient_data``.
3. **Adjust** p within each family (Holm by default; ``fdr_bh``, ``bonferroni`` or ``none`` per spec) with
   :func:`qdstats.multiplicity.adjust_pvalues`, over the claims of the family that produced a p-value.
4. **Decide** (:func:`decide`) and **grade** (:mod:`qdstats.claims.grading`). Simulated evidence is capped:
   a would-be ``supported`` becomes ``inconclusive``.

Numbers are stored at full precision; only :mod:`qdstats.claims.render` rounds.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from qdstats.claims.grading import GradeInput, grade_claim
from qdstats.claims.registry import ClaimContext, InsufficientDataError, get_test
from qdstats.claims.spec import (
    ClaimSpec,
    Decision,
    Selection,
    check_families,
    load_specs,
    spec_files,
)
from qdstats.claims.tests_builtin import _filter_model, match_values
from qdstats.records import (
    FailedMeasurement,
    Measurement,
    read_parquet,
    read_records,
    to_frame,
)
from qdstats.records.provenance import git_sha, package_version
from qdstats.results import StatResult
from qdstats.validation import UnknownNameError, did_you_mean

__all__ = [
    "ENGINE_VERSION",
    "VERDICTS",
    "ClaimRow",
    "ClaimsTable",
    "SourceFile",
    "StalenessReport",
    "Verdict",
    "build_claims_table",
    "build_from_files",
    "check_table",
    "decide",
    "load_record_files",
]

ENGINE_VERSION = 4  # 3: grade rules dropped_observations and single_calibration_draw; 4: calibration draws counted
# only in the conditions the test compares
Verdict = Literal["supported", "not_supported", "inconclusive", "insufficient_data", "error"]
VERDICTS: tuple[str, ...] = ("supported", "not_supported", "inconclusive", "insufficient_data", "error")
_EVIDENCE_ORDER = ("measured", "literature", "simulated")


def _num(v: Any) -> float | None:
    """Finite float, or None (NaN/None are stored as null so the JSON stays standard)."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if not math.isnan(f) else None


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) else (str(f) if math.isinf(f) else f)
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    return str(v)


class ClaimRow(BaseModel):
    """One claim's row: self-describing, full precision (NaN stored as None)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    claim_id: str
    version: int
    statement: str
    family: str
    test: str
    unit_of_analysis: str
    alternative: str
    evidence: str = Field(description="Effective evidence class: the weaker of the spec's and the records'.")
    n: int | None = Field(default=None, description="Units of analysis used by the test.")
    n_units: dict[str, int] = Field(default_factory=dict, description="Counts per level (items, languages...).")
    n_records: int = Field(default=0, description="Selected records (all roles).")
    n_languages: int = Field(default=0, description="Distinct languages in the evidence the test used (see _evidence_scope).")
    n_models: int = Field(default=0, description="Distinct models in the evidence the test used (see _evidence_scope).")
    n_items: int = Field(default=0, description="Distinct items in the evidence the test used (see _evidence_scope).")
    estimate_name: str | None = None
    estimate: float | None = None
    statistic_name: str | None = None
    statistic: float | None = None
    df: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None
    ci_method: str | None = None
    p: float | None = None
    p_adj: float | None = None
    adjust_method: str = "holm"
    family_size: int = Field(default=0, description="p-values adjusted together in this claim's family.")
    alpha: float = 0.05
    min_abs_effect: float = 0.0
    null_value: float = 0.0
    verdict: Verdict = "error"
    verdict_reason: str = ""
    grade: str = "n/a"
    grade_reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    message: str | None = Field(default=None, description="Error or insufficient-data message.")
    model: str | None = Field(default=None, description="The model the claim is restricted to (params.model), if any.")
    n_specifications: int = Field(default=0, description="Pre-declared specifications re-tested (spec key `specifications`; 0: none).")
    n_specs_agree: int = Field(default=0, description="Specifications whose verdict equals this row's verdict.")
    robust: bool | None = Field(default=None, description="True: every specification gives this verdict; False: at least one "
                                "differs; None: no curve, or none differs but some could not be computed.")
    data_hash: str = Field(default="", description="sha256 of the selected records' role:content_key lines.")
    spec_hash: str = ""
    references: tuple[str, ...] = ()
    seed_claim: str | None = None
    audit: str | None = None
    notes: str | None = None
    produced_by: tuple[str, ...] = ()
    details: dict[str, Any] = Field(default_factory=dict)


class SourceFile(BaseModel):
    """A spec or record file the table was built from (path relative to the table's directory)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    sha256: str


class ClaimsTable(BaseModel):
    """A claims table with the hashes needed to detect staleness."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_name: Literal["qd.claims_table"] = "qd.claims_table"
    schema_version: Literal[1] = 1
    engine_version: int = ENGINE_VERSION
    rows: tuple[ClaimRow, ...]
    spec_hashes: dict[str, str] = Field(description="claim id -> spec hash.")
    records_hash: str = Field(description="sha256 of the sorted content keys of all input records.")
    n_records: int = 0
    n_failed_records: int = 0
    n_duplicate_records: int = 0
    spec_inputs: tuple[str, ...] = Field(default=(), description="Spec paths as given (files or directories), relative to the table directory; re-expanded by check_table so new spec files are noticed.")
    spec_files: tuple[SourceFile, ...] = ()
    record_files: tuple[SourceFile, ...] = ()
    qd_version: str = Field(default_factory=package_version)
    git_sha: str | None = Field(default_factory=git_sha)
    created_at: str = Field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def row(self, claim_id: str) -> ClaimRow:
        """The row of ``claim_id`` (UnknownNameError with suggestions otherwise)."""
        for r in self.rows:
            if r.claim_id == claim_id:
                return r
        ids = [r.claim_id for r in self.rows]
        raise UnknownNameError(f"`claim_id` {claim_id!r} is not in the table.{did_you_mean(claim_id, ids)} Claims: {ids}.")

    def to_frame(self) -> pd.DataFrame:
        """One row per claim, full precision (None as NaN for numeric columns)."""
        recs = []
        for r in self.rows:
            d = r.model_dump(exclude={"details", "n_units"})
            d["warnings"] = " | ".join(r.warnings)
            d["grade_reasons"] = ",".join(r.grade_reasons)
            d["references"] = " ; ".join(r.references)
            d["produced_by"] = " ; ".join(r.produced_by)
            d["n_units"] = json.dumps(r.n_units, sort_keys=True)
            recs.append(d)
        df = pd.DataFrame(recs)
        for c in ("estimate", "statistic", "df", "ci_low", "ci_high", "ci_level", "p", "p_adj"):
            if c in df:
                df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        return df

    def verdicts(self) -> dict[str, str]:
        """``{claim_id: verdict}``."""
        return {r.claim_id: r.verdict for r in self.rows}


# ----------------------------------------------------------------------------- decision rule
def decide(
    estimate: float | None, ci_low: float | None, ci_high: float | None, p_adj: float | None,
    decision: Decision, alternative: str,
) -> tuple[str, str]:
    """Map a tested claim to ``supported`` / ``not_supported`` / ``inconclusive`` (with the reason).

    With ``null = decision.ci_excludes``, ``m = decision.min_abs_effect`` and ``eff = estimate - null``:

    * **supported**: ``p_adj <= alpha``, the two-sided CI excludes ``null``, ``eff`` has the claimed sign
      (any sign for two-sided claims) and ``|eff| >= m``;
    * **not_supported**: the CI rules out an effect of practical size in the claimed direction: for
      ``greater`` the CI upper bound is below ``null + m``; for ``less`` the lower bound is above ``null - m``;
      for ``two-sided`` (needs ``m > 0``) the CI lies inside ``(null - m, null + m)``. With ``m = 0`` this is a
      reversal (the CI lies entirely on the wrong side);
    * **inconclusive**: everything else (including an undefined estimate, p-value or CI).

    Parameters
    ----------
    estimate, ci_low, ci_high : float or None
        Point estimate and two-sided CI bounds (None or NaN when undefined).
    p_adj : float or None
        p-value adjusted within the claim's family.
    decision : Decision
        ``alpha``, ``ci_excludes`` (the null value), ``min_abs_effect``.
    alternative : {'two-sided', 'less', 'greater'}
        Direction of the claim.

    Returns
    -------
    (verdict, reason)
        ``verdict`` in {'supported', 'not_supported', 'inconclusive'} and a one-line reason.

    Notes
    -----
    A one-sided claim is judged with a two-sided CI (conservative). Not independently validated (a
    convention); every branch is tested in ``tests/qdstats/claims/test_claims_engine.py``.

    Examples
    --------
    >>> from qdstats.claims import Decision, decide
    >>> decide(0.5, 0.3, 0.7, 0.01, Decision(min_abs_effect=0.1), "greater")[0]
    'supported'
    >>> decide(-0.5, -0.7, -0.3, 0.9, Decision(), "greater")[0]
    'not_supported'
    """
    a = decision.alpha
    null, m = decision.ci_excludes, decision.min_abs_effect
    if estimate is None or math.isnan(estimate):
        return "inconclusive", "estimate undefined"
    eff = estimate - null
    have_ci = ci_low is not None and ci_high is not None and not (math.isnan(ci_low) or math.isnan(ci_high))
    if have_ci:
        if alternative == "greater" and ci_high < null + m:
            return "not_supported", (f"CI upper bound {ci_high:.6g} < {null:+.6g} + min_abs_effect {m:g}"
                                     + (" (reversal)" if ci_high < null else ""))
        if alternative == "less" and ci_low > null - m:
            return "not_supported", (f"CI lower bound {ci_low:.6g} > {null:+.6g} - min_abs_effect {m:g}"
                                     + (" (reversal)" if ci_low > null else ""))
        if alternative == "two-sided" and m > 0 and null - m < ci_low and ci_high < null + m:
            return "not_supported", f"CI inside the equivalence margin {null:g} ± {m:g}"
    if p_adj is None or math.isnan(p_adj):
        return "inconclusive", "no p-value"
    if not have_ci:
        return "inconclusive", "no confidence interval"
    excludes = ci_low > null or ci_high < null
    sign_ok = alternative == "two-sided" or (alternative == "greater" and eff > 0) or (alternative == "less" and eff < 0)
    if p_adj <= a and excludes and sign_ok and abs(eff) >= m:
        return "supported", f"p_adj {p_adj:.3g} <= {a:g}, CI excludes {null:g}, |effect| >= {m:g}"
    why = []
    if p_adj > a:
        why.append(f"p_adj {p_adj:.3g} > {a:g}")
    if not excludes:
        why.append(f"CI includes {null:g}")
    if not sign_ok:
        why.append("estimate has the wrong sign")
    if abs(eff) < m:
        why.append(f"|effect| < {m:g}")
    return "inconclusive", "; ".join(why)


# ----------------------------------------------------------------------------- records
def _failed_key(r: FailedMeasurement) -> str:
    payload = r.model_dump(mode="json", exclude={"provenance"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True, allow_nan=True).encode()).hexdigest()


def load_record_files(paths: Sequence[str | os.PathLike[str]]) -> list[Measurement | FailedMeasurement]:
    """Read JSONL (``.jsonl``/``.json``) and Parquet (``.parquet``) record files, in the given order."""
    out: list[Measurement | FailedMeasurement] = []
    for path in map(Path, paths):
        if path.suffix == ".parquet":
            out.extend(read_parquet(path))
        else:
            out.extend(read_records(path))
    return out


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Records:
    """All input records: deduplicated, sorted by content key, with a tidy frame."""

    def __init__(self, records: Sequence[Any]) -> None:
        meas: dict[str, Measurement] = {}
        failed: dict[str, FailedMeasurement] = {}
        n_dup = 0
        for r in records:
            if isinstance(r, Measurement):
                k = r.content_key()
                n_dup += k in meas
                meas.setdefault(k, r)
            elif isinstance(r, FailedMeasurement):
                k = _failed_key(r)
                n_dup += k in failed
                failed.setdefault(k, r)
            else:
                raise TypeError(f"`records` must contain Measurement or FailedMeasurement; got {type(r).__name__}.")
        self.keys = sorted(meas)
        self.failed = [failed[k] for k in sorted(failed)]
        self.n_duplicates = n_dup
        all_keys = [f"m:{k}" for k in self.keys] + [f"f:{k}" for k in sorted(failed)]
        self.hash = hashlib.sha256("\n".join(all_keys).encode()).hexdigest()
        if self.keys:
            frame = to_frame([meas[k] for k in self.keys])
            frame["content_key"] = self.keys
        else:
            frame = pd.DataFrame(columns=["quantity", "value", "content_key"])
        self.frame = frame.reset_index(drop=True)
        self._masks: dict[str, np.ndarray] = {}

    def mask(self, sel: Selection) -> np.ndarray:
        """Boolean mask of the rows matching ``sel`` (cached: the rows a spec's ``for_each`` expands share their
        selections, and a scan of the full frame costs seconds)."""
        key = sel.model_dump_json()
        if key not in self._masks:
            self._masks[key] = _selection_mask(self.frame, sel).to_numpy(bool)
        return self._masks[key]

    def select(self, sel: Selection) -> pd.DataFrame:
        """The rows matching ``sel`` (a copy), in the frame's order."""
        return self.frame[self.mask(sel)].copy()


def _selection_mask(frame: pd.DataFrame, sel: Selection) -> pd.Series:
    mask = frame["quantity"] == sel.quantity

    def col_isin(col: str, values: Any) -> pd.Series:
        if col not in frame.columns:
            return match_values(pd.Series(None, index=frame.index, dtype=object), values)
        return match_values(frame[col], values)

    for col, vals in (("model.model_id", sel.model), ("language", sel.language), ("site", sel.site),
                      ("corpus.split", sel.split), ("corpus.corpus_id", sel.corpus), ("n", sel.n)):
        if vals is not None:
            mask &= col_isin(col, vals)
    if sel.site_regex is not None:
        site = frame["site"] if "site" in frame.columns else pd.Series(None, index=frame.index)
        mask &= site.astype(object).map(lambda s: s is not None and isinstance(s, str)
                                        and __import__("re").fullmatch(sel.site_regex, s) is not None)
    for prefix, filt in (("condition", sel.condition), ("attributes", sel.attributes)):
        for k, v in filt.items():
            mask &= col_isin(f"{prefix}.{k}", v)
    return mask


def _failed_matching(failed: list[FailedMeasurement], sel: Selection) -> int:
    n = 0
    for f in failed:
        if f.quantity is not None and f.quantity != sel.quantity:
            continue
        if sel.language is not None and f.language is not None and f.language not in sel.language:
            continue
        if sel.model is not None and f.model is not None and f.model.model_id not in sel.model:
            continue
        n += 1
    return n


def _evidence_from_records(df: pd.DataFrame) -> str:
    found = "measured"
    if "attributes.evidence" in df.columns:
        vals = set(map(str, df["attributes.evidence"].dropna()))
        if "simulated" in vals:
            return "simulated"
        if "literature" in vals:
            found = "literature"
    if "provenance.routine" in df.columns and df["provenance.routine"].astype(str).str.contains("simulat").any():
        return "simulated"
    return found


def _evidence_scope(data: pd.DataFrame, params: Any) -> pd.DataFrame:
    """The selected records narrowed to what the test's parameters restrict it to.

    Specs often select every model and language and let a parameter pick one (``params.model``,
    ``params.language``, ``params.target`` with its ``params.reference``; ``for_each`` expands them), so
    counting models and languages over the *selection* would credit a single-model or single-language
    claim with evidence it did not use and skip the ``single_model`` / ``few_languages`` grade rules.
    """
    df = data
    model = getattr(params, "model", None)
    if isinstance(model, str):
        try:
            df = _filter_model(df, model)
        except InsufficientDataError:
            return df.iloc[0:0]
    langs = {v for v in (getattr(params, "language", None), getattr(params, "target", None)) if isinstance(v, str)}
    if langs and "language" in df.columns:
        ref = getattr(params, "reference", None)
        if isinstance(ref, str):
            langs.add(ref)
        df = df[df["language"].isin(langs)]
    return df


def _conditions_used(scope: pd.DataFrame, params: Any) -> pd.DataFrame:
    """The records of the conditions the test compares: those matching any condition mapping among the test's
    parameters (``baseline``, ``treatment``, ``before``, ``after``, ...; a mapping counts when one of its keys is a
    ``condition.*`` column). A selection often keeps conditions the test never reads (H1 selects every unpruned,
    unprotected condition, GPTQ ones included, and compares fp32 with int4); counting calibration draws over those
    would grade a claim on evidence it did not use. Without such a mapping the scope is returned unchanged."""
    values = params.model_dump() if hasattr(params, "model_dump") else dict(params or {})
    conds = [v for v in values.values() if isinstance(v, dict) and v
             and any(f"condition.{k}" in scope.columns for k in v)]
    if not conds or scope.empty:
        return scope
    mask = pd.Series(False, index=scope.index)
    for cond in conds:
        m = pd.Series(True, index=scope.index)
        for k, v in cond.items():
            col = scope[f"condition.{k}"] if f"condition.{k}" in scope.columns else pd.Series(None, index=scope.index,
                                                                                                dtype=object)
            m &= match_values(col, v)
        mask |= m
    return scope[mask]


def _calibration_draws(scope: pd.DataFrame) -> int | None:
    """Fewest distinct ``condition.calib_seed`` values of any calibration set (``condition.calibration``) in the
    evidence; None when no record carries a calibration seed (the grade rule ``single_calibration_draw``)."""
    if "condition.calib_seed" not in scope.columns:
        return None
    cal = scope[scope["condition.calib_seed"].notna()]
    if cal.empty:
        return None
    key = (cal["condition.calibration"].astype(str) if "condition.calibration" in cal.columns
           else pd.Series("all", index=cal.index))
    return int(cal.groupby(key)["condition.calib_seed"].nunique().min())


# ----------------------------------------------------------------------------- build
def _run_one(spec: ClaimSpec, recs: _Records) -> dict[str, Any]:
    """Select, test and describe one claim (never raises)."""
    out: dict[str, Any] = {
        "claim_id": spec.id, "version": spec.version, "statement": spec.statement, "family": spec.family,
        "test": spec.test, "unit_of_analysis": spec.unit_of_analysis, "alternative": spec.alternative,
        "adjust_method": spec.adjust, "alpha": spec.decision.alpha, "min_abs_effect": spec.decision.min_abs_effect,
        "null_value": spec.decision.ci_excludes, "spec_hash": spec.spec_hash(), "references": spec.references,
        "seed_claim": spec.seed_claim, "audit": spec.audit, "notes": spec.notes, "produced_by": spec.produced_by,
        "model": str(spec.params["model"]) if spec.params.get("model") is not None else None,
    }
    msgs: list[str] = []
    try:
        frames, keys = [], []
        for role, sel in spec.select.items():
            sub = recs.select(sel)
            sub["role"] = role
            frames.append(sub)
            keys.extend(f"{role}:{k}" for k in sub["content_key"])
            nf = _failed_matching(recs.failed, sel)
            if nf:
                msgs.append(f"{nf} failed measurement(s) of {sel.quantity!r} match role {role!r} (not used).")
        data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        out["data_hash"] = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()
        out["n_records"] = len(data)
        for col, name in (("language", "n_languages"), ("model.model_id", "n_models"), ("item_id", "n_items")):
            out[name] = int(data[col].nunique()) if col in data.columns else 0  # refined below once params are valid
        spec_ev = spec.evidence
        rec_ev = _evidence_from_records(data) if len(data) else "measured"
        out["evidence"] = max(spec_ev, rec_ev, key=_EVIDENCE_ORDER.index)
        if rec_ev != "measured" and _EVIDENCE_ORDER.index(rec_ev) > _EVIDENCE_ORDER.index(spec_ev):
            msgs.append(f"records are marked {rec_ev!r} but the spec says {spec_ev!r}; treated as {rec_ev!r}.")
        test = get_test(spec.test)
        empty = [r for r in test.roles if not (data["role"] == r).any()] if len(data) else list(test.roles)
        if empty:
            raise InsufficientDataError(
                f"no records match the selection of role(s) {empty} "
                f"(quantity {[spec.select[r].quantity for r in empty]})."
            )
        ctx = ClaimContext(claim_id=spec.id, alternative=spec.alternative, confidence_level=spec.confidence_level,
                           unit_of_analysis=spec.unit_of_analysis, covariates=tuple(spec.covariates),
                           n_resamples=spec.n_resamples, seed=spec.seed)
        params = test.validate_params(spec.params)
        scope = _evidence_scope(data, params)
        for col, name in (("language", "n_languages"), ("model.model_id", "n_models"), ("item_id", "n_items")):
            out[name] = int(scope[col].nunique()) if col in scope.columns else 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = test(data, params, ctx)
        if not isinstance(res, StatResult):
            raise TypeError(f"test {spec.test!r} returned {type(res).__name__}, not a StatResult.")
        wl = list(res.warnings)
        for w in caught:
            t = str(w.message)
            if t not in wl and not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
                wl.append(t)
        out.update(
            n=int(res.n), n_units={str(k): int(v) for k, v in res.n_units.items()}, estimate_name=res.estimate_name,
            estimate=_num(res.estimate), statistic_name=res.statistic_name, statistic=_num(res.statistic),
            df=_num(res.df), p=_num(res.pvalue), details=_jsonable(res.details),
        )
        draws = _calibration_draws(_conditions_used(scope, params))
        if draws is not None:
            out["details"] = {**out["details"], "n_calibration_draws": draws}
        if res.ci is not None:
            out.update(ci_low=_num(res.ci.low), ci_high=_num(res.ci.high), ci_level=res.ci.level, ci_method=res.ci.method)
        out["warnings"] = tuple(msgs + wl)
        if res.n < spec.decision.min_n:
            out["verdict"] = "insufficient_data"
            out["message"] = f"n = {res.n} units of analysis < decision.min_n = {spec.decision.min_n}."
            out["p"] = None
        else:
            out["verdict"] = None  # decided after adjustment
    except InsufficientDataError as exc:
        out.update(verdict="insufficient_data", message=str(exc), warnings=tuple(msgs))
    except Exception as exc:  # one failing claim never aborts the table
        out.update(verdict="error", message=f"{type(exc).__name__}: {exc}", warnings=tuple(msgs))
    out.setdefault("evidence", spec.evidence)
    return out


def build_claims_table(
    specs: Sequence[ClaimSpec] | Sequence[str | os.PathLike[str]],
    records: Sequence[Measurement | FailedMeasurement] | Sequence[str | os.PathLike[str]],
    *,
    spec_files: Sequence[SourceFile] = (),
    record_files: Sequence[SourceFile] = (),
) -> ClaimsTable:
    """Build a claims table from claim specs and measurement records.

    Parameters
    ----------
    specs : sequence of ClaimSpec, or of spec file / directory paths
        The claims, in table order. Paths are loaded with :func:`qdstats.claims.spec.load_specs`.
    records : sequence of Measurement / FailedMeasurement, or of record file paths
        The evidence (JSONL or Parquet files when paths). Order does not matter; identical records
        (same content key) count once.
    spec_files, record_files : sequence of SourceFile
        Provenance of the inputs, stored for :func:`check_table` (set by :func:`build_from_files`).

    Returns
    -------
    ClaimsTable
        One :class:`ClaimRow` per claim plus ``records_hash`` and ``spec_hashes``.

    Raises
    ------
    SpecError
        Spec paths that fail to load, duplicate claim ids, or a family with mixed ``adjust``/``alpha``.
    TypeError
        ``records`` holding something other than records.

    Notes
    -----
    Family adjustment uses :func:`qdstats.multiplicity.adjust_pvalues` on the claims of the family that
    produced a p-value (claims with ``insufficient_data``/``error`` or without p are not counted);
    ``family_size`` reports the count. CIs are not multiplicity-adjusted.
    Validated against: statsmodels ``multipletests`` (Holm, BH) for the family adjustment, rtol 1e-12;
    planted-effect simulations for the verdicts (``tests/qdstats/claims``).

    References
    ----------
    .. [1] Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian Journal of
       Statistics, 6(2), 65-70.
    .. [2] Lakens, D. (2017). Equivalence tests. Social Psychological and Personality Science, 8(4), 355-362.
       https://doi.org/10.1177/1948550617697177 (the ``min_abs_effect`` margin of ``not_supported``).

    Examples
    --------
    >>> from qdstats.claims import build_claims_table
    >>> table = build_claims_table([], [])
    >>> len(table.rows)
    0
    """
    from qdstats.multiplicity import adjust_pvalues

    spec_list: list[ClaimSpec]
    if all(isinstance(s, ClaimSpec) for s in specs):
        spec_list = list(specs)  # type: ignore[arg-type]
        ids = [s.id for s in spec_list]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"`specs` contain duplicate claim ids: {dup}.")
        check_families(spec_list)
    else:
        spec_list = load_specs(list(specs))  # type: ignore[arg-type]
    if records and not isinstance(records[0], (Measurement, FailedMeasurement)):
        records = load_record_files(records)  # type: ignore[arg-type]
    recs = _Records(records)  # type: ignore[arg-type]
    rows = [_run_one(s, recs) for s in spec_list]

    # family-wise adjustment
    families: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        families.setdefault(r["family"], []).append(i)
    for idx in families.values():
        eligible = [i for i in idx if rows[i]["verdict"] is None and rows[i].get("p") is not None]
        method = rows[idx[0]]["adjust_method"]
        if eligible:
            ps = [rows[i]["p"] for i in eligible]
            if method == "none":
                adj = ps
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    adj = list(adjust_pvalues(ps, method=method, alpha=rows[idx[0]]["alpha"]).p_adjusted)
            for i, pa in zip(eligible, adj):
                rows[i]["p_adj"] = _num(pa)
        for i in idx:
            rows[i]["family_size"] = len(eligible)

    spec_by_id = {s.id: s for s in spec_list}
    out_rows = []
    for r in rows:
        spec = spec_by_id[r["claim_id"]]
        if r["verdict"] is None:
            v, why = decide(r.get("estimate"), r.get("ci_low"), r.get("ci_high"), r.get("p_adj"), spec.decision,
                            spec.alternative)
            if r["evidence"] == "simulated" and v == "supported":
                v, why = "inconclusive", "simulated evidence can never support a claim (verdict capped); " + why
            r["verdict"], r["verdict_reason"] = v, why
        else:
            r["verdict_reason"] = r.get("message") or ""
        if spec.specifications == "units" and r["verdict"] in ("supported", "not_supported", "inconclusive"):
            _add_specification_curve(r, spec, recs)
        gi = GradeInput(
            n=int(r.get("n") or 0), n_languages=int(r.get("n_languages", 0)), n_models=int(r.get("n_models", 0)),
            details=r.get("details") or {}, warnings=tuple(r.get("warnings", ())),
            selection_split=spec.selection_split, test_split=spec.effective_test_split, evidence=r["evidence"],
            robust=r.get("robust"),
        )
        r["grade"], r["grade_reasons"] = grade_claim(gi, r["verdict"])
        out_rows.append(ClaimRow(**r))
    return ClaimsTable(
        rows=tuple(out_rows), spec_hashes={s.id: s.spec_hash() for s in spec_list}, records_hash=recs.hash,
        n_records=len(recs.keys), n_failed_records=len(recs.failed), n_duplicate_records=recs.n_duplicates,
        spec_files=tuple(spec_files), record_files=tuple(record_files),
    )


def _add_specification_curve(row: dict[str, Any], spec: ClaimSpec, recs: _Records) -> None:
    """Re-test the row's claim under every default specification; agreement is with the row's own verdict."""
    from qdstats.claims.speccurve import (
        DEFAULT_SPECIFICATIONS,
        curve_selections,
        specification_curve,
    )

    p, p_adj = row.get("p"), row.get("p_adj")
    # the row's own adjustment factor (Holm/BH rank), so the primary specification reproduces the row's p_adj
    mult = max(1.0, p_adj / p) if p and p_adj is not None and p > 0 else float(max(1, int(row.get("family_size") or 1)))
    try:
        # only the rows the curve can use (its y filters with the four per-item quantities), from cached masks
        frame = recs.frame[np.logical_or.reduce([recs.mask(q) for q in curve_selections(spec)])]
        curve = specification_curve(spec, DEFAULT_SPECIFICATIONS, frame, p_multiplier=mult)
    except (InsufficientDataError, ValueError, KeyError) as exc:  # the row keeps its verdict; the failure is a warning
        row["warnings"] = (*row.get("warnings", ()), f"specification curve failed: {type(exc).__name__}: {exc}")
        return
    verdict = row["verdict"]
    agree = [c.verdict == verdict for c in curve.rows if c.verdict not in ("insufficient_data", "error")]
    missing = len(curve.rows) - len(agree)
    row["n_specifications"] = len(curve.rows)
    row["n_specs_agree"] = int(sum(agree))
    row["robust"] = False if not all(agree) else (None if missing else True)
    row["details"] = {**(row.get("details") or {}), "specifications": {
        c.specification: {"estimate": _num(c.estimate), "ci_low": _num(c.ci_low), "ci_high": _num(c.ci_high),
                          "p_adj": _num(c.p_adj), "min_abs_effect": _num(c.min_abs_effect), "verdict": c.verdict}
        for c in curve.rows}}
    if missing:
        row["warnings"] = (*row.get("warnings", ()),
                           f"{missing} of {len(curve.rows)} specifications could not be computed (missing records).")


# ----------------------------------------------------------------------------- files and staleness
def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path.resolve(), base.resolve())


def build_from_files(
    spec_paths: Sequence[str | os.PathLike[str]],
    record_paths: Sequence[str | os.PathLike[str]],
    *,
    table_dir: str | os.PathLike[str],
) -> ClaimsTable:
    """Load specs and records from files and build the table, recording the files relative to ``table_dir``.

    Parameters
    ----------
    spec_paths : sequence of path
        Spec files or directories (see :func:`qdstats.claims.spec.spec_files`).
    record_paths : sequence of path
        JSONL or Parquet record files.
    table_dir : path
        Where the table will be written; stored paths are relative to it so :func:`check_table` works from
        any working directory.

    Returns
    -------
    ClaimsTable
        As :func:`build_claims_table`, with ``spec_files`` and ``record_files`` (path, sha256) filled.

    Raises
    ------
    SpecError
        Invalid specs.
    FileNotFoundError
        A record file does not exist.
    RecordFormatError
        A record file line is not a valid record.
    """
    base = Path(table_dir)
    sfiles = spec_files(spec_paths)
    specs = load_specs(sfiles)
    rpaths = [Path(p) for p in record_paths]
    for p in rpaths:
        if not p.exists():
            raise FileNotFoundError(f"record file not found: {p}")
    records = load_record_files(rpaths)
    table = build_claims_table(
        specs, records,
        spec_files=[SourceFile(path=_rel(p, base), sha256=_file_sha(p)) for p in sfiles],
        record_files=[SourceFile(path=_rel(p, base), sha256=_file_sha(p)) for p in rpaths],
    )
    return table.model_copy(update={"spec_inputs": tuple(_rel(Path(p), base) for p in spec_paths)})


class StalenessReport(BaseModel):
    """Result of :func:`check_table`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fresh: bool
    problems: tuple[str, ...] = ()


_COMPARE_EXCLUDE = {"qd_version", "git_sha", "created_at", "spec_files", "record_files", "spec_inputs"}


def check_table(table_path: str | os.PathLike[str], *, rebuild: bool = False) -> StalenessReport:
    """Is a stored claims table up to date with its specs and records?

    Recomputes the spec hashes (from the spec files listed in the table, resolved relative to the
    table's directory) and the records' content hash; any difference, a missing file or a different
    engine version makes the table stale. With ``rebuild=True`` the table is rebuilt and compared at full
    precision (catches code changes that alter numbers).

    Parameters
    ----------
    table_path : path
        ``claims_table.json`` or the directory holding it.
    rebuild : bool, default False
        Also rebuild the table and compare every stored value.

    Returns
    -------
    StalenessReport
        ``fresh`` and the list of ``problems``.

    Raises
    ------
    FileNotFoundError
        ``table_path`` (or ``<dir>/claims_table.json``) does not exist.
    pydantic.ValidationError
        The file is not a claims table.
    """
    p = Path(table_path)
    if p.is_dir():
        p = p / "claims_table.json"
    if not p.exists():
        raise FileNotFoundError(f"claims table not found: {p}")
    table = ClaimsTable.model_validate_json(p.read_text(encoding="utf-8"))
    base = p.parent
    problems: list[str] = []
    if table.engine_version != ENGINE_VERSION:
        problems.append(f"engine version {table.engine_version} != current {ENGINE_VERSION}.")
    spaths = [base / f for f in table.spec_inputs] or [base / f.path for f in table.spec_files]
    rpaths = [base / f.path for f in table.record_files]
    missing = [str(q) for q in spaths + rpaths if not q.exists()]
    if missing:
        return StalenessReport(fresh=False, problems=tuple(problems + [f"missing input file: {m}" for m in missing]))
    try:
        specs = load_specs(spaths) if spaths else []
    except (ValueError, OSError) as exc:  # SpecError is a ValueError
        return StalenessReport(fresh=False, problems=tuple(problems + [f"specs no longer load: {exc}"]))
    now = {s.id: s.spec_hash() for s in specs}
    for cid in sorted(set(table.spec_hashes) | set(now)):
        if cid not in now:
            problems.append(f"claim {cid!r} is in the table but no longer in the specs.")
        elif cid not in table.spec_hashes:
            problems.append(f"claim {cid!r} is in the specs but not in the table.")
        elif now[cid] != table.spec_hashes[cid]:
            problems.append(f"spec of claim {cid!r} changed.")
    records = load_record_files(rpaths)
    rh = _Records(records).hash
    if rh != table.records_hash:
        problems.append("records changed (content hash differs).")
    if rebuild and not problems:
        new = build_claims_table(specs, records, spec_files=table.spec_files, record_files=table.record_files)
        a = table.model_dump(mode="json", exclude=_COMPARE_EXCLUDE)
        b = new.model_dump(mode="json", exclude=_COMPARE_EXCLUDE)
        if a != b:
            for ra, rb in zip(a["rows"], b["rows"]):
                diff = sorted(k for k in ra if ra[k] != rb.get(k))
                if diff:
                    problems.append(f"claim {ra['claim_id']!r}: rebuilt values differ in {diff}.")
            if not problems:
                problems.append("rebuilt table differs.")
    return StalenessReport(fresh=not problems, problems=tuple(problems))

"""One headline sentence per compression condition, generated from the difference-in-differences table.

A researcher reads a card or a report for the answer first: "INT4: Korean (+0.35 [0.30, 0.41]) and Chinese (+0.20
[0.15, 0.26]) lose more bit/byte than English; Hebrew no different (+0.01 [-0.02, 0.03])". The sentence is written
here from the numbers and a stated decision rule (:class:`DecisionRule`), never by hand; :func:`classify` is the rule.

The rule, per language and condition, on the difference in differences ``DiD = Δ_lang − Δ_ref`` (bit/byte) and its
CI ``[lo, hi]``:

* **more** ("loses more than English"): ``lo > 0`` and ``DiD >= min_effect``;
* **less** ("loses less than English"): ``hi < 0`` and ``DiD <= -min_effect``;
* **same** ("no different"): the whole CI lies within ``[-margin, +margin]`` (an equivalence statement: a CI that
  merely contains 0 is not evidence of no difference);
* **unclear**: anything else (the CI contains 0 but is wider than the margin, or the effect is below
  ``min_effect`` while the CI still reaches beyond the margin), and undefined CIs.

The CIs are per language and per condition, unadjusted for the number of languages and conditions; the sentence says
so. Validated against: closed-form decisions on planted tables (tests/qdstats/report/test_headlines.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["VERDICTS", "DecisionRule", "Headline", "classify", "condition_display", "headline_sentences"]

Verdict = Literal["more", "less", "same", "unclear"]
VERDICTS: tuple[str, ...] = ("more", "less", "same", "unclear")
_PHRASE = {"more": "lose{s} more bit/byte than {ref}", "less": "lose{s} less bit/byte than {ref}",
           "same": "no different from {ref} (CI within ±{margin})", "unclear": "unclear (CI includes 0)"}


class DecisionRule(BaseModel):
    """The decision rule of the headline sentences (see the module docstring).

    Attributes
    ----------
    min_effect : float, default 0.01
        Smallest |DiD| (bit/byte) called a difference (the claims table's ``min_abs_effect``).
    margin : float, default 0.03
        Equivalence margin (bit/byte): "no different" needs the whole CI inside ``±margin`` (the card's default
        precision target, so a language measured to the target with an estimate near 0 reads "no different").
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_effect: float = Field(default=0.01, ge=0.0, description="Smallest |DiD| in bit/byte called a difference.")
    margin: float = Field(default=0.03, gt=0.0, description="Equivalence margin in bit/byte for 'no different'.")

    def text(self, *, reference: str = "English", level: float = 0.95) -> str:
        """The rule in one paragraph, for the card and the report."""
        return (f"Decision rule: a language loses more than {reference} when the {level:.0%} CI of its difference in "
                f"differences (Δ_lang − Δ_{reference}, bit/byte) lies above 0 and the estimate is at least "
                f"{self.min_effect:g}; less when the CI lies below 0 and the estimate is at most −{self.min_effect:g}; "
                f"no different when the whole CI lies within ±{self.margin:g}; otherwise unclear. CIs are per "
                "language and condition, not adjusted for the number of comparisons.")


class Headline(BaseModel):
    """One condition's headline: the sentence and the classified languages (full precision)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    condition: str = Field(description="Condition key (e.g. 'int4-g64-sym').")
    label: str = Field(description="Display name (e.g. 'INT4 (int4-g64-sym)').")
    sentence: str = Field(description="The headline sentence (numbers rounded for display).")
    verdicts: dict[str, Verdict] = Field(description="Language -> verdict.")
    estimates: dict[str, tuple[float, float, float]] = Field(description="Language -> (DiD, CI low, CI high).")

    def to_frame(self) -> pd.DataFrame:
        """One row per language: ``condition, language, verdict, did, ci_low, ci_high`` (full precision)."""
        rows = [{"condition": self.condition, "language": lang, "verdict": v, "did": self.estimates[lang][0],
                 "ci_low": self.estimates[lang][1], "ci_high": self.estimates[lang][2]}
                for lang, v in self.verdicts.items()]
        return pd.DataFrame(rows, columns=["condition", "language", "verdict", "did", "ci_low", "ci_high"])


def classify(did: float, low: float, high: float, rule: DecisionRule | None = None) -> Verdict:
    """Verdict of one language under one condition (see the module docstring).

    Examples
    --------
    >>> classify(0.35, 0.30, 0.41), classify(0.005, -0.02, 0.03), classify(0.05, -0.01, 0.11)
    ('more', 'same', 'unclear')
    """
    rule = rule or DecisionRule()
    vals = [float(x) if x is not None else math.nan for x in (did, low, high)]
    if any(math.isnan(v) for v in vals):
        return "unclear"
    d, lo, hi = vals
    if lo > 0.0 and d >= rule.min_effect:
        return "more"
    if hi < 0.0 and d <= -rule.min_effect:
        return "less"
    if lo >= -rule.margin and hi <= rule.margin:
        return "same"
    return "unclear"


_INT = re.compile(r"^int(\d+)-")


def condition_display(key: str) -> str:
    """A readable name for a condition key: ``int4-g64-sym`` -> ``INT4 (int4-g64-sym)``, ``gguf-q4_0`` ->
    ``GGUF Q4_0``; other keys unchanged.

    Examples
    --------
    >>> condition_display("int4-g64-sym"), condition_display("gguf-q8_0"), condition_display("fp32")
    ('INT4 (int4-g64-sym)', 'GGUF Q8_0', 'fp32')
    >>> condition_display("backend=gguf-py,scheme=gguf-q4_0"), condition_display("prune=0.5,scheme=int4-g64-sym")
    ('GGUF Q4_0', 'prune=0.5,scheme=int4-g64-sym')
    """
    if ";" not in key and "=" in key:  # a ``k=v,...`` label: the scheme names the format (its library is implied)
        pairs = dict(p.partition("=")[::2] for p in key.split(","))
        if "scheme" in pairs and set(pairs) <= {"scheme", "backend"}:
            key = pairs["scheme"]
    m = _INT.match(key)
    if m:
        return f"INT{m.group(1)} ({key})"
    if key.lower().startswith("gguf-"):
        return "GGUF " + key[5:].upper()
    return key


def _num(x: float) -> str:
    return f"{x:+.3f}".replace("-", "−")


def _ci(lo: float, hi: float) -> str:
    return f"[{lo:.3f}, {hi:.3f}]".replace("-", "−")


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def headline_sentences(
    table: pd.DataFrame,
    *,
    reference: str = "eng_Latn",
    names: Mapping[str, str] | None = None,
    rule: DecisionRule | None = None,
    condition: str = "condition_short",
    order: Sequence[str] | None = None,
) -> list[Headline]:
    """One :class:`Headline` per condition of a difference-in-differences table.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows per (condition, language) with columns ``language, did, did_ci_low, did_ci_high`` and ``condition``
        (as :func:`qdstats.report.data.degradation_table` writes them); reference rows are skipped.
    reference : str, default 'eng_Latn'
        Reference language (its name is used in the sentence).
    names : mapping, optional
        Language code -> display name (e.g. ``{'kor_Hang': 'Korean'}``); codes are shown where missing.
    rule : DecisionRule, optional
        Default ``DecisionRule()`` (min_effect 0.01, margin 0.03).
    condition : str, default 'condition_short'
        Column holding the condition key.
    order : sequence of str, optional
        Condition keys in display order (default: first appearance).

    Returns
    -------
    list of Headline
        Languages inside each verdict group are sorted by DiD, largest first; groups in the order more, less,
        same, unclear; empty groups are left out.

    Raises
    ------
    ValueError
        ``table`` lacks a column.

    Examples
    --------
    >>> t = pd.DataFrame({"condition_short": ["int4-g64-sym"] * 3, "language": ["eng_Latn", "kor_Hang", "heb_Hebr"],
    ...                   "did": [0.0, 0.35, 0.004], "did_ci_low": [0.0, 0.30, -0.02], "did_ci_high": [0.0, 0.41, 0.025]})
    >>> headline_sentences(t, names={"kor_Hang": "Korean", "heb_Hebr": "Hebrew", "eng_Latn": "English"})[0].sentence
    'INT4 (int4-g64-sym): Korean (+0.350 [0.300, 0.410]) loses more bit/byte than English; Hebrew (+0.004 [−0.020, 0.025]) no different from English (CI within ±0.03).'
    """
    rule = rule or DecisionRule()
    missing = [c for c in (condition, "language", "did", "did_ci_low", "did_ci_high") if c not in table.columns]
    if missing:
        raise ValueError(f"`table` lacks column(s) {missing}; it has {list(table.columns)}.")
    names = dict(names or {})
    ref_name = names.get(reference, reference)
    keys = list(order) if order is not None else list(dict.fromkeys(table[condition]))
    out: list[Headline] = []
    for key in keys:
        g = table[(table[condition] == key) & (table["language"] != reference)]
        if g.empty:
            continue
        g = g.sort_values("did", ascending=False, kind="stable", na_position="last")
        verdicts: dict[str, Verdict] = {}
        estimates: dict[str, tuple[float, float, float]] = {}
        groups: dict[str, list[str]] = {v: [] for v in VERDICTS}
        for _, r in g.iterrows():
            lang = str(r["language"])
            d, lo, hi = (float(r[c]) for c in ("did", "did_ci_low", "did_ci_high"))
            v = classify(d, lo, hi, rule)
            verdicts[lang] = v
            estimates[lang] = (d, lo, hi)
            shown = "NaN" if math.isnan(d) else f"{_num(d)} {_ci(lo, hi)}"
            groups[v].append(f"{names.get(lang, lang)} ({shown})")
        clauses = []
        for v in VERDICTS:
            if groups[v]:
                plural = len(groups[v]) > 1
                phrase = _PHRASE[v].format(s="" if plural else "s", ref=ref_name, margin=f"{rule.margin:g}")
                clauses.append(f"{_join(groups[v])} {phrase}")
        label = condition_display(str(key))
        out.append(Headline(condition=str(key), label=label, sentence=f"{label}: " + "; ".join(clauses) + ".",
                            verdicts=verdicts, estimates=estimates))
    return out


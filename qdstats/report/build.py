"""Build a report (HTML + Markdown + PNG figures) from records."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qdstats.validation import check_option
from qdstats.records import atomic_write_text
from qdstats.report import plots
from qdstats.report.data import ReportData, sensitivity_matrix, storage_key, summarize_records
from qdstats.report.render import Figure, claims_frame, render_html, render_markdown

__all__ = ["ReportResult", "build_report"]

Format = Literal["html", "markdown"]
FORMATS: tuple[str, ...] = ("html", "markdown")


class ReportResult(BaseModel):
    """Where a report was written and what it contains."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    out_dir: Path = Field(description="Output directory.")
    html: Path | None = Field(default=None, description="The self-contained HTML file (None if not requested).")
    markdown: Path | None = Field(default=None, description="The Markdown file (None if not requested).")
    figures: tuple[Path, ...] = Field(default=(), description="PNG files written beside the Markdown file.")
    sections: tuple[str, ...] = Field(default=(), description="Sections included, in display order.")
    omitted: dict[str, str] = Field(default_factory=dict, description="Omitted section -> reason.")
    n_records: int = Field(description="Records given (measurements and failures).", ge=0)
    warnings: tuple[str, ...] = Field(default=(), description="Warnings raised while computing the tables.")
    data: ReportData | None = Field(default=None, exclude=True, repr=False, description="The tables (not serialized).")

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file written: the HTML, the Markdown and the figures."""
        return tuple(p for p in (self.html, self.markdown, *self.figures) if p is not None)


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return s[:60] or "figure"


def _figures(data: ReportData, strict: bool) -> tuple[list[Figure], dict[str, str]]:
    """Draw every figure; a figure that fails omits itself with a reason (unless ``strict``)."""
    figs: list[Figure] = []
    failed: dict[str, str] = {}
    ref = data.settings.get("reference", "eng_Latn")

    def add(section: str, filename: str, caption: str, make: Any) -> None:
        try:
            fig = make()
            figs.append(Figure(section=section, filename=f"figures/{filename}.png", caption=caption,
                               png=plots.figure_png(fig)))
        except Exception as exc:
            if strict:
                raise
            failed[f"figure {filename}"] = f"{type(exc).__name__}: {exc}"

    if data.degradation is not None:
        level = float(data.degradation["ci_level"].iloc[0])
        add("degradation", "forest", f"Per-language Δ bits per byte with {level:.0%} CIs, one panel per model and "
            f"condition; dashed line at 0; reference language {ref} marked.",
            lambda: plots.forest_plot(data.degradation, reference=ref))
        d = data.degradation
        if not d["did"].isna().all() and d["model_key"].nunique() == 1:
            add("degradation", "did-forest", f"Difference in differences Δ − Δ({ref}) with {level:.0%} CIs, one panel "
                "per condition, sorted by effect (largest on top); grey band: the ±0.03 'no different' margin.",
                lambda: plots.did_forest(d, reference=ref, margin=0.03))
        if data.storage is not None:
            merged = d.assign(condition_key=d["condition"].map(storage_key)).merge(
                data.storage[["model_key", "condition_key", "family", "bits_per_weight", "model_bits_per_weight"]],
                on=["model_key", "condition_key"], how="inner")
            for mkey, m in merged.groupby("model_key", sort=True):
                if m["condition"].nunique() >= 2 and not m["did"].isna().all():
                    mid = str(m["model_label"].iloc[0] if "model_label" in m.columns else m["model_id"].iloc[0])
                    add("degradation", f"did-vs-bits-{_slug(mid)}",
                        f"Difference in differences vs {ref} against the measured bits per weight of the whole model "
                        f"(scales included; tensors a format leaves alone at 16 bits), {mid}: one panel per language, "
                        f"one line per format family, "
                        f"{level:.0%} CIs.",
                        lambda m=m, mid=mid: plots.did_vs_bits(m, reference=ref, title=mid))
    if data.sensitivity is not None:
        s = data.sensitivity
        for (mkey, mid, cond), _ in s.groupby(["model_key", "model_id", "condition"], sort=True):
            add("sensitivity", f"sensitivity-{_slug(mid)}-{_slug(cond)}",
                f"Sensitivity (Δ bits per byte when only that site is compressed), {mid}, {cond}.",
                lambda mkey=mkey, cond=cond, mid=mid: plots.sensitivity_heatmap(
                    sensitivity_matrix(s, model_key=mkey, condition=cond), title=f"{mid}\n{cond}"))
    if data.alignment_pairs is not None and data.alignment_fits is not None:
        add("alignment", "alignment", "Word-level alignment vs damage with a least-squares line per language.",
            lambda: plots.alignment_scatter(data.alignment_pairs, data.alignment_fits,
                                            alignment_label=data.settings.get("alignment", "alignment"),
                                            damage_label=data.settings.get("damage", "damage")))
    if data.tokenizer is not None:
        add("tokenizer", "premiums", f"Tokenizer premium vs {ref} (dashed line: parity) with stored CIs.",
            lambda: plots.premium_bars(data.tokenizer, reference=ref))
    return figs, failed


def build_report(
    records: Sequence[Any],
    *,
    out_dir: str | os.PathLike[str],
    claims_table: Any = None,
    title: str = "qd report",
    formats: Sequence[Format] = FORMATS,
    reference: str = "eng_Latn",
    baseline: Mapping[str, Any] | None = None,
    confidence_level: float = 0.95,
    n_resamples: int = 1999,
    rng: int | None = 0,
    strict: bool = False,
) -> ReportResult:
    """Write an HTML and a Markdown report of the records into ``out_dir``.

    Parameters
    ----------
    records : sequence of Measurement or FailedMeasurement
        Records of any mix of quantities (see :mod:`qdstats.report.data` for what each section uses).
    out_dir : path
        Output directory (created). Writes ``report.html`` (self-contained), ``report.md`` and
        ``figures/*.png``.
    claims_table : ClaimsTable, dict, list or path, optional
        A claims table to include (see :func:`qdstats.report.render.claims_frame`); unreadable tables are
        omitted with the reason (or raise with ``strict=True``).
    title : str, default 'qd report'
        Report title.
    formats : sequence of {'html', 'markdown'}, default both
        What to write (figures are written with the Markdown).
    reference : str, default 'eng_Latn'
        Reference language.
    baseline : dict, optional
        Full-precision condition (default ``{'scheme': 'fp32', 'protect': 'none', 'prune': 'none'}``).
    confidence_level : float, default 0.95
        Coverage of every computed CI.
    n_resamples : int, default 1999
        Bootstrap and permutation resamples (alignment slopes use at most 999).
    rng : int or None, default 0
        Seed; the same records and seed give byte-identical figures and tables.
    strict : bool, default False
        Raise on the first error inside a section instead of omitting the section with a note.

    Returns
    -------
    ReportResult
        Paths written, sections included and omitted (with reasons), and the warnings raised while
        computing (their text is also in the report's notes).

    Raises
    ------
    TypeError
        ``records`` is not a sequence of records, ``title`` not a string.
    ValueError
        Unknown ``formats`` entry, bad ``confidence_level`` / ``n_resamples``.

    Notes
    -----
    Graceful degradation: a section without records is omitted and the report says why; an error inside a
    section (or figure) omits only that section, with the error in the notes. All statistics come from
    :mod:`qdstats.report.data` (see there for what is validated against what); rounding happens only in
    :mod:`qdstats.report.render`. Validated against: not independently validated as a whole; the tests
    check that every estimate appears with its CI and n, that the embedded PNGs equal the figure files,
    and that headless Chromium decodes every image.

    Examples
    --------
    >>> import tempfile
    >>> from qdstats.records import Measurement
    >>> recs = [Measurement(quantity="tok.premium_vs_reference", value=v, language=lang, n=10)
    ...         for lang, v in (("eng_Latn", 1.0), ("heb_Hebr", 4.2))]
    >>> res = build_report(recs, out_dir=tempfile.mkdtemp(), title="demo")
    >>> res.sections, sorted(res.omitted)[:2]
    (('tokenizer',), ['alignment', 'claims'])
    """
    if not isinstance(title, str):
        raise TypeError(f"`title` must be a string; got {type(title).__name__}.")
    if isinstance(formats, str):
        formats = (formats,)
    for f in formats:
        check_option(f, "formats", FORMATS)
    out = Path(out_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = summarize_records(records, reference=reference, baseline=baseline, confidence_level=confidence_level,
                                 n_resamples=n_resamples, rng=rng, strict=strict)
        figs, failed_figs = _figures(data, strict)
    warned = tuple(dict.fromkeys(str(w.message) for w in caught))
    claims = None
    claims_note = None
    if claims_table is not None:
        try:
            claims = claims_frame(claims_table)
        except Exception as exc:
            if strict:
                raise
            claims_note = f"the claims table could not be read: {type(exc).__name__}: {exc}"
    data = ReportData(degradation=data.degradation, sensitivity=data.sensitivity,
                      alignment_pairs=data.alignment_pairs, alignment_fits=data.alignment_fits,
                      tokenizer=data.tokenizer, licenses=data.licenses, provenance=data.provenance,
                      omitted={**data.omitted, **{k: f"failed: {v}" for k, v in failed_figs.items()}},
                      notes=data.notes, settings=data.settings)
    out.mkdir(parents=True, exist_ok=True)
    html_path = md_path = None
    fig_paths: list[Path] = []
    if "html" in formats:
        html_path = atomic_write_text(out / "report.html",
                                      render_html(data, figs, title=title, claims=claims, claims_note=claims_note))
    if "markdown" in formats:
        for f in figs:
            fig_paths.append(atomic_write_text(out / f.filename, f.png))
        md_path = atomic_write_text(out / "report.md",
                                    render_markdown(data, figs, title=title, claims=claims, claims_note=claims_note))
    for p in [html_path, md_path, *fig_paths]:
        if p is not None:
            os.chmod(p, 0o644)  # atomic writes create 0600 temp files; a report is meant to be shared
    omitted = dict(data.omitted)
    if claims is None:
        omitted["claims"] = claims_note or "no claims table given."
    sections = data.sections + (("claims",) if claims is not None else ())
    return ReportResult(out_dir=out, html=html_path, markdown=md_path, figures=tuple(fig_paths), sections=sections,
                        omitted=omitted, n_records=len(records), warnings=warned, data=data)

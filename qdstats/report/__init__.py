"""Reports: HTML and Markdown with plots and tables, built from saved records (``qd report``).

:func:`build_report` selects and summarizes records (:mod:`qdstats.report.data`, using
:mod:`qdstats.disparity` and :mod:`qdstats.resampling`), draws figures (:mod:`qdstats.report.plots`,
matplotlib Agg) and renders them (:mod:`qdstats.report.render`). Sections whose records are absent are
omitted with a note. Like the rest of :mod:`qdstats`, this package never imports torch.
"""

from qdstats.report.build import ReportResult, build_report
from qdstats.report.data import (
    BASELINE_CONDITION,
    ReportData,
    alignment_damage,
    degradation_table,
    license_table,
    paired_items,
    provenance_summary,
    sensitivity_matrix,
    sensitivity_table,
    summarize_records,
    tokenizer_premiums,
)
from qdstats.report.render import claims_frame, render_html, render_markdown

__all__ = [
    "BASELINE_CONDITION",
    "ReportData",
    "ReportResult",
    "alignment_damage",
    "build_report",
    "claims_frame",
    "degradation_table",
    "license_table",
    "paired_items",
    "provenance_summary",
    "render_html",
    "render_markdown",
    "sensitivity_matrix",
    "sensitivity_table",
    "summarize_records",
    "tokenizer_premiums",
]

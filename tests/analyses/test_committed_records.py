"""Every record file committed under ``analyses/`` must read back as valid records.

A file written by an older serializer (NaN as JSON ``null``) once slipped in unreadable; this catches that class of
defect for every committed JSONL and Parquet file.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from qdstats.records import FailedMeasurement, Measurement, read_parquet, read_records

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p for p in (ROOT / "analyses").rglob("*") if p.suffix in (".jsonl", ".parquet"))


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_committed_record_file_reads_back(path: Path) -> None:
    recs = read_parquet(path) if path.suffix == ".parquet" else read_records(path)
    assert recs, f"{path} is empty"
    for r in recs:
        assert isinstance(r, (Measurement, FailedMeasurement))
        if isinstance(r, Measurement) and math.isnan(r.value):
            assert r.warnings, f"{path}: NaN value without a warning ({r.quantity}, {r.language})"


def test_there_are_committed_records() -> None:
    assert len(FILES) >= 6


def test_committed_claims_table_is_fresh() -> None:
    """docs/claims.md comes from analyses/claims_table, which must match the committed specs and records.

    Rebuild with ``bash analyses/seed_claims/build_table.sh`` after changing a spec or a record file.
    """
    from qdstats.claims.engine import check_table

    table = ROOT / "analyses" / "claims_table" / "claims_table.json"
    if not table.exists():
        pytest.skip("no committed claims table yet")
    report = check_table(table, rebuild=False)
    assert report.fresh, report.problems
    md = (ROOT / "analyses" / "claims_table" / "claims_table.md").read_text(encoding="utf-8")
    assert md in (ROOT / "docs" / "claims.md").read_text(encoding="utf-8"), "docs/claims.md is not the committed table"
    from qdstats.claims.engine import ClaimsTable
    from qdstats.claims.render import check_summary

    loaded = ClaimsTable.model_validate_json(table.read_text(encoding="utf-8"))
    for doc in (ROOT / "README.md", ROOT / "docs" / "claims.md"):
        assert check_summary(doc, loaded) == [], f"{doc.name}: its claims summary is not the committed table's"

"""Regenerate docs/schema/*.json from the record models: `python scripts/export_schemas.py`."""

from pathlib import Path

from qdstats.records import export_json_schemas

if __name__ == "__main__":
    for p in export_json_schemas(Path(__file__).resolve().parents[1] / "docs" / "schema"):
        print(p)

"""Claims engine: declarative claim specs tested on saved records, as a graded claims table.

See ``docs/claims-engine.md`` for the spec format, the decision rule and the grading rules.
"""

from qdstats.claims.engine import (
    ENGINE_VERSION,
    VERDICTS,
    ClaimRow,
    ClaimsTable,
    StalenessReport,
    build_claims_table,
    build_from_files,
    check_table,
    decide,
)
from qdstats.claims.grading import RULES, grade_claim, rules_markdown
from qdstats.claims.registry import (
    ClaimContext,
    InsufficientDataError,
    get_test,
    list_tests,
    register_test,
)
from qdstats.claims.render import to_csv, to_json, to_latex, to_markdown, write_table
from qdstats.claims.spec import (
    ClaimSpec,
    Decision,
    Selection,
    SpecError,
    load_spec_file,
    load_specs,
)

__all__ = [
    "ENGINE_VERSION", "RULES", "VERDICTS", "ClaimContext", "ClaimRow", "ClaimSpec", "ClaimsTable", "Decision",
    "InsufficientDataError", "Selection", "SpecError", "StalenessReport", "build_claims_table", "build_from_files",
    "check_table", "decide", "get_test", "grade_claim", "list_tests", "load_spec_file", "load_specs",
    "register_test", "rules_markdown", "to_csv", "to_json", "to_latex", "to_markdown", "write_table",
]

"""Keep ``docs/claims-engine.md`` in sync with the code: its generated blocks come from the code.

The document contains blocks delimited by ``<!-- NAME:start -->`` / ``<!-- NAME:end -->``; :func:`sync_doc`
rewrites each block from its generator. A test asserts that syncing changes nothing, so the grading rules,
the spec keys and the list of registered tests in the documentation are exactly those of the code.

Regenerate after changing the code::

    python -m qdstats.claims.docsync docs/claims-engine.md
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from qdstats.claims.grading import rules_markdown
from qdstats.claims.registry import tests_markdown
from qdstats.claims.spec import spec_fields_markdown

__all__ = ["BLOCKS", "sync_doc"]

BLOCKS: dict[str, Callable[[], str]] = {
    "spec-fields": spec_fields_markdown,
    "tests": tests_markdown,
    "grading-rules": rules_markdown,
}


def sync_doc(text: str) -> str:
    """Return ``text`` with every generated block rewritten from the code.

    Raises
    ------
    ValueError
        A block's start/end markers are missing.
    """
    for name, gen in BLOCKS.items():
        pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"the document has no `<!-- {name}:start -->` ... `<!-- {name}:end -->` block.")
        body = gen().rstrip()
        text = pattern.sub(lambda _m, n=name, b=body: f"<!-- {n}:start -->\n{b}\n<!-- {n}:end -->", text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated blocks of the given Markdown files in place."""
    args = sys.argv[1:] if argv is None else argv
    for a in args:
        p = Path(a)
        p.write_text(sync_doc(p.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

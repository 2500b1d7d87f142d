"""The Examples sections of the qdstats statistics modules run and print what they say (doctest).

The style guide asks for doctested examples; nothing ran them before this test (added in review), so an
example could silently go stale. Each module is one test; the output comparison is exact apart from
whitespace, so an example that changes its printed value fails here.
"""

from __future__ import annotations

import doctest
import importlib
import warnings

import pytest

MODULES = [
    "qdstats",
    "qdstats.validation",
    "qdstats.correlation",
    "qdstats.collinearity",
    "qdstats.multiplicity",
    "qdstats.resampling",
    "qdstats.disparity",
    "qdstats.within",
    "qdstats.claims.engine",
    "qdstats.claims.spec",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    tests = finder.find(module, name, globs={**vars(module)})
    assert tests, f"{name} has no doctest examples"
    report: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # examples on few languages/groups warn by design
        for t in tests:
            runner.run(t, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.attempted > 0
    assert results.failed == 0, "".join(report)

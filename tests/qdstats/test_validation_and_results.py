"""Shared validation helpers and the StatResult base."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from pydantic import ValidationError

from qdstats.validation import (
    DegenerateDataWarning,
    WarningCollector,
    as_1d_float,
    check_confidence_level,
    check_int,
    check_option,
    handle_nan,
)
from qdstats.results import ConfidenceInterval, StatResult


def test_check_option_did_you_mean():
    assert check_option("pearson", "method", ("pearson", "spearman")) == "pearson"
    with pytest.raises(ValueError, match=r"`method` must be one of \{'pearson', 'spearman'\}; got 'pearsonn'\. Did you mean 'pearson'\?"):
        check_option("pearsonn", "method", ("pearson", "spearman"))
    with pytest.raises(ValueError, match=r"got 'zzz'\.$"):
        check_option("zzz", "method", ("pearson", "spearman"))


def test_check_int_and_level():
    assert check_int(5, "n", minimum=1) == 5
    with pytest.raises(TypeError, match="`n` must be an integer; got True"):
        check_int(True, "n")
    with pytest.raises(ValueError, match="`n` must be >= 1; got 0"):
        check_int(0, "n", minimum=1)
    with pytest.raises(ValueError, match="strictly between 0 and 1; got 95"):
        check_confidence_level(95)


def test_as_1d_float():
    np.testing.assert_array_equal(as_1d_float([1, 2], "x"), [1.0, 2.0])
    with pytest.raises(ValueError, match="`x` must be 1-D"):
        as_1d_float([[1, 2]], "x")
    with pytest.raises(ValueError, match="`y` contains infinite"):
        as_1d_float([1, np.inf], "y")
    with pytest.raises(TypeError, match="`x` must be a 1-D array of numbers"):
        as_1d_float(["a"], "x")


def test_handle_nan_policies():
    x = np.array([1.0, np.nan, 3.0])
    y = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="`x` contain NaN"):
        handle_nan({"x": x, "y": y}, "raise")
    out, dropped, has = handle_nan({"x": x, "y": y}, "omit")
    assert dropped == 1 and not has and out["y"].tolist() == [1.0, 3.0]
    _, _, has = handle_nan({"x": x, "y": y}, "propagate")
    assert has
    with pytest.raises(ValueError, match="same length"):
        handle_nan({"x": x, "y": y[:2]}, "omit")


def test_warning_collector_emits_and_collects():
    wc = WarningCollector()
    with pytest.warns(DegenerateDataWarning, match="constant"):
        wc.warn("constant input")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wc.warn("constant input")
    assert wc.messages == ("constant input",)


def test_statresult_frame_and_summary():
    r = StatResult(test="pearson", estimate_name="r", estimate=0.123456789, n=10,
                   ci=ConfidenceInterval(low=-0.5, high=0.6, level=0.95, method="fisher-z"),
                   pvalue=0.7, n_units={"languages": 10}, warnings=("few units",))
    df = r.to_frame()
    assert df.loc["pearson", "estimate"] == 0.123456789  # full precision
    assert df.loc["pearson", "n_languages"] == 10
    assert "0.1235" in r.summary() and "few units" in r.summary()
    assert r.ci.contains(0.0) and not r.ci.excludes(0.0)
    with pytest.raises(ValidationError, match="frozen"):
        r.estimate = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="`pvalue` must lie in"):
        StatResult(test="x", estimate_name="r", estimate=0.0, n=3, pvalue=1.5)
    nan_ci = ConfidenceInterval(low=math.nan, high=1.0, level=0.9, method="m")
    assert not nan_ci.excludes(0.0)

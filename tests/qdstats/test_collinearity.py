"""Tests for qdstats.collinearity: vif and condition_number.

Oracles: R 4.2.2 car 3.1.1 ``car::vif`` and ``kappa``/``svd`` values frozen in
tests/reference/correlation_oracles.py (generator tests/reference/r/correlation.R); published anchors
from field-anchors.md (car::vif on mtcars, statsmodels PR #5975 test vectors); closed forms
``1/(1 - R²_j)`` and ``diag(inv(corr))``.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose
from statsmodels.stats.outliers_influence import variance_inflation_factor

from qdstats.validation import DegenerateDataWarning, UnknownNameError
from qdstats.collinearity import CollinearityWarning, VIFResult, condition_number, vif


def _load_oracles():
    path = Path(__file__).resolve().parents[1] / "reference" / "correlation_oracles.py"
    spec = importlib.util.spec_from_file_location("correlation_oracles", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


O = _load_oracles()
MT = pd.DataFrame(O.MTCARS)
SAME_FORMULA = 1e-10  # style-anchors §2.8: same closed form as the oracle


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ============================================================================ oracles
@pytest.mark.parametrize("case", sorted(O.VIF))
def test_vif_matches_car_vif(case):
    """Oracle: R car::vif(lm(...)) and diag(solve(cor(X))), rtol 1e-10."""
    c = O.VIF[case]
    res = _quiet(vif, MT, c["columns"])
    got = [res.vifs[col] for col in c["columns"]]
    assert_allclose(got, c["vif"], rtol=SAME_FORMULA)
    assert_allclose(got, c["vif_diag_inv_corr"], rtol=SAME_FORMULA)
    assert_allclose(res.table["tolerance"], 1.0 / np.array(c["vif"]), rtol=SAME_FORMULA)
    assert_allclose(res.table["r_squared"], 1.0 - 1.0 / np.array(c["vif"]), rtol=SAME_FORMULA)
    assert list(res.table["column"]) == c["columns"]
    assert res.estimate == max(got) and res.n == c["n"]
    assert_allclose(res.condition_number, c["condition_number"], rtol=SAME_FORMULA)


def test_vif_published_car_anchor():
    """Oracle: field-anchors.md, car::vif(lm(mpg ~ disp + hp + wt + drat, mtcars)) (statology), 6 decimals."""
    res = vif(MT, ["disp", "hp", "wt", "drat"])
    got = [res.vifs[c] for c in ("disp", "hp", "wt", "drat")]
    assert_allclose(got, [8.209402, 2.894373, 5.096601, 2.279547], atol=5e-7)  # published rounding
    assert res.warnings == ()


def test_vif_equals_one_over_one_minus_r2_closed_form():
    """Closed form: VIF_j = 1/(1 - R²_j) from an lstsq auxiliary regression with intercept."""
    cols = ["cyl", "disp", "hp", "wt", "drat"]
    X = MT[cols].to_numpy(float)
    res = _quiet(vif, MT, cols)
    for j, c in enumerate(cols):
        others = np.column_stack([np.ones(len(X)), np.delete(X, j, axis=1)])
        beta, *_ = np.linalg.lstsq(others, X[:, j], rcond=None)
        resid = X[:, j] - others @ beta
        r2 = 1 - resid @ resid / ((X[:, j] - X[:, j].mean()) ** 2).sum()
        assert_allclose(res.vifs[c], 1 / (1 - r2), rtol=SAME_FORMULA, err_msg=c)


def test_statsmodels_no_constant_trap_is_avoided():
    """The trap: variance_inflation_factor on a design without a constant (and without its centering)
    gives uncentered-R² VIFs that disagree with car::vif; vif() adds the intercept."""
    c = O.VIF["mt_disp_hp_wt_drat"]
    X = MT[c["columns"]].to_numpy(float)
    naive = [variance_inflation_factor(X, j, standardize=False) for j in range(X.shape[1])]
    assert not np.allclose(naive, c["vif"], rtol=0.05)  # drat: ~ 100 instead of 2.28
    ours = vif(MT, c["columns"])
    assert_allclose([ours.vifs[k] for k in c["columns"]], c["vif"], rtol=SAME_FORMULA)
    raw = _quiet(vif, MT, c["columns"], add_constant=False)
    assert_allclose([raw.vifs[k] for k in c["columns"]], naive, rtol=SAME_FORMULA)


def test_statsmodels_pr5975_vectors_r2_point8_and_orthogonal():
    """Oracle: statsmodels PR #5975 test vectors: R² = 0.8 -> VIF = 5; orthogonal -> VIF = 1."""
    rng = np.random.default_rng(5)
    u = rng.normal(size=(50, 3))  # -> exactly centered, orthonormal columns q
    u -= u.mean(axis=0)
    q, _ = np.linalg.qr(u)
    df = pd.DataFrame({"a": q[:, 0], "b": math.sqrt(0.8) * q[:, 0] + math.sqrt(0.2) * q[:, 1]})
    assert_allclose(list(vif(df).vifs.values()), [5.0, 5.0], rtol=SAME_FORMULA)
    ortho = pd.DataFrame(q * [1.0, 10.0, 0.01] + [3.0, -2.0, 100.0], columns=["a", "b", "c"])
    assert_allclose(list(vif(ortho).vifs.values()), [1.0, 1.0, 1.0], rtol=SAME_FORMULA)


def test_perfect_collinearity_is_inf_with_warning():
    """Oracle: statsmodels PR #5975: perfect collinearity -> VIF = inf."""
    df = MT[["disp", "hp", "wt"]].assign(combo=lambda d: 2 * d["disp"] - d["hp"] + 0.5)
    with pytest.warns(DegenerateDataWarning, match=r"perfect collinearity: \['disp', 'hp', 'combo'\]"):
        res = vif(df)
    assert res.vifs["disp"] == math.inf and res.vifs["combo"] == math.inf
    assert res.table.set_index("column").loc["combo", "tolerance"] == 0.0
    assert math.isfinite(res.vifs["wt"]) and res.estimate == math.inf
    assert any("perfect collinearity" in w for w in res.warnings)


def test_vif_threshold_warning_is_collected():
    with pytest.warns(CollinearityWarning, match=r"VIF above threshold 10: disp=10\.37\.$"):
        res = vif(MT, ["cyl", "disp", "hp", "wt"])
    assert res.warnings == ("VIF above threshold 10: disp=10.37.",)
    with pytest.warns(CollinearityWarning, match=r"VIF above threshold 5: cyl=6\.738, disp=10\.37"):
        vif(MT, ["cyl", "disp", "hp", "wt"], threshold=5)


def test_constant_column_gives_nan_and_is_left_out():
    df = MT[["disp", "hp", "wt"]].assign(k=1.0)
    with pytest.warns(DegenerateDataWarning, match=r"constant column\(s\) \['k'\]: VIF is undefined"):
        res = vif(df)
    assert math.isnan(res.vifs["k"])
    ref = vif(MT, ["disp", "hp", "wt"])
    assert_allclose([res.vifs[c] for c in ("disp", "hp", "wt")], list(ref.vifs.values()), rtol=SAME_FORMULA)


def test_single_predictor_has_vif_one_and_default_columns_are_numeric():
    assert vif(MT, ["wt"]).vifs == {"wt": 1.0}
    df = MT[["disp", "hp"]].assign(label="car", flag=True)
    res = vif(df)
    assert res.variables == ("disp", "hp")


def test_vif_nan_policy():
    df = MT[["disp", "hp", "wt"]].copy()
    df.loc[0, "hp"] = np.nan
    with pytest.raises(ValueError, match=r"`data` contain NaN \(1 rows\)"):
        vif(df)
    res = vif(df, nan_policy="omit")
    ref = vif(df.dropna())
    assert res.n == 31 and res.details["n_dropped"] == 1
    assert_allclose(list(res.vifs.values()), list(ref.vifs.values()), rtol=SAME_FORMULA)
    with pytest.raises(ValueError, match=r"`nan_policy` must be one of \{'raise', 'omit'\}; got 'propagate'"):
        vif(df, nan_policy="propagate")


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: vif(MT, ["dsp", "hp"]), UnknownNameError, r"`columns`: 'dsp' is not a column of `data`\. Did you mean 'disp'\?"),
        (lambda: vif(MT, []), ValueError, r"`columns` is empty"),
        (lambda: vif(MT, ["hp", "hp"]), ValueError, r"`columns` contains duplicate names"),
        (lambda: vif(MT, "hp"), TypeError, r"`columns` must be a sequence of column names or None; got 'hp'"),
        (lambda: vif(MT, threshold=0), ValueError, r"`threshold` must be a finite number > 0; got 0"),
        (lambda: vif(MT, add_constant="yes"), TypeError, r"`add_constant` must be a bool; got 'yes'"),
        (lambda: vif(MT.to_numpy()), TypeError, r"`data` must be a pandas DataFrame; got ndarray"),
        (lambda: vif(MT.assign(s="a"), ["s", "hp"]), TypeError, r"`columns` must be numeric"),
        (lambda: condition_number(MT, scale="no"), TypeError, r"`scale` must be a bool; got 'no'"),
        (lambda: condition_number(MT, ["mpgg"]), UnknownNameError, r"Did you mean 'mpg'\?"),
    ],
)
def test_bad_input_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_vif_result_round_trip_and_table():
    res = vif(MT, ["disp", "hp", "wt", "drat"])
    assert isinstance(res, VIFResult)
    assert VIFResult.model_validate_json(res.model_dump_json()) == res
    assert list(res.table.columns) == ["column", "vif", "tolerance", "r_squared"]


# ============================================================================ condition number
@pytest.mark.parametrize("case", sorted(O.VIF))
def test_condition_number_matches_r_kappa(case):
    """Oracle: R kappa(Xs, exact = TRUE) and max(svd(Xs)$d)/svd(Xs)$d of the unit-length-scaled design."""
    c = O.VIF[case]
    res = _quiet(condition_number, MT, c["columns"])
    assert_allclose(res.estimate, c["condition_number"], rtol=SAME_FORMULA)
    assert_allclose(res.condition_indices, c["condition_indices"], rtol=SAME_FORMULA)
    no_int = _quiet(condition_number, MT, c["columns"], add_constant=False)
    assert_allclose(no_int.estimate, c["condition_number_no_intercept"], rtol=SAME_FORMULA)
    assert res.design_columns == ("(Intercept)", *c["columns"])
    # variance-decomposition proportions: each coefficient's proportions sum to 1
    assert_allclose(np.sum(res.variance_proportions, axis=0), 1.0, rtol=1e-12)
    assert list(res.table.columns) == ["condition_index", "(Intercept)", *c["columns"]]


def test_condition_number_threshold_warning():
    """Belsley: 30 flags moderate-to-strong dependencies; mtcars disp+hp+wt+drat has 37.57."""
    with pytest.warns(CollinearityWarning, match=r"condition number 37\.57 exceeds threshold 30 \(Belsley\)"):
        res = condition_number(MT, ["disp", "hp", "wt", "drat"])
    assert res.warnings == ("condition number 37.57 exceeds threshold 30 (Belsley).",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert condition_number(MT, ["disp", "hp", "wt", "drat"], threshold=40).warnings == ()


def test_condition_number_singular_design():
    df = MT[["disp", "hp"]].assign(combo=lambda d: d["disp"] + d["hp"])
    with pytest.warns(DegenerateDataWarning, match=r"numerically\) singular"):
        res = condition_number(df)
    assert res.estimate == math.inf
    df0 = MT[["disp"]].assign(z=0.0)
    with pytest.warns(DegenerateDataWarning, match=r"all-zero column\(s\) \['z'\]"):
        assert condition_number(df0).estimate == math.inf


def test_condition_number_unscaled_matches_numpy_cond():
    """Closed form: scale=False gives numpy.linalg.cond of the raw design [1, X]."""
    cols = ["disp", "hp", "wt"]
    X = np.column_stack([np.ones(len(MT)), MT[cols].to_numpy(float)])
    res = _quiet(condition_number, MT, cols, scale=False)
    assert_allclose(res.estimate, np.linalg.cond(X), rtol=SAME_FORMULA)


# ============================================================================ properties
@st.composite
def _designs(draw):
    n = draw(st.integers(min_value=8, max_value=25))
    p = draw(st.integers(min_value=2, max_value=4))
    ints = st.integers(min_value=-1000, max_value=1000)
    X = draw(hnp.arrays(np.int64, (n, p), elements=ints)).astype(float) / 10.0
    Xc = X - X.mean(axis=0)
    # keep designs away from exact/near-exact collinearity, where VIFs are not numerically stable
    assume(np.linalg.matrix_rank(Xc) == p)
    assume(np.linalg.cond(Xc / np.linalg.norm(Xc, axis=0)) < 1e4)
    return pd.DataFrame(X, columns=[f"c{j}" for j in range(p)])


@given(_designs())
def test_prop_vif_at_least_one(df):
    res = _quiet(vif, df)
    assert all(v >= 1.0 - 1e-9 for v in res.vifs.values())  # 1e-9: rounding of 1/(1 - ~0)


@given(_designs(), st.floats(0.001, 1000.0), st.floats(-1000.0, 1000.0), st.booleans())
def test_prop_vif_unchanged_by_rescaling_a_column(df, scale, shift, negate):
    base = _quiet(vif, df)
    moved = df.copy()
    moved["c0"] = (-scale if negate else scale) * moved["c0"] + shift
    res = _quiet(vif, moved)
    # cond < 1e4 and re-standardization inside statsmodels: VIFs agree to ~1e-8 relative
    assert_allclose(list(res.vifs.values()), list(base.vifs.values()), rtol=1e-7)
    cn0 = _quiet(condition_number, df)
    cn1 = _quiet(condition_number, df.assign(c0=scale * df["c0"]))  # pure rescaling (no shift)
    assert_allclose(cn1.estimate, cn0.estimate, rtol=1e-7)


@given(_designs(), st.randoms(use_true_random=False))
def test_prop_vif_independent_of_row_order(df, rnd):
    perm = rnd.sample(range(len(df)), len(df))
    a = _quiet(vif, df)
    b = _quiet(vif, df.iloc[perm])
    assert_allclose(list(b.vifs.values()), list(a.vifs.values()), rtol=1e-8)
    assert_allclose(_quiet(condition_number, df.iloc[perm]).estimate, _quiet(condition_number, df).estimate, rtol=1e-8)


@given(st.integers(min_value=2, max_value=6), st.integers(min_value=0, max_value=2**32 - 1))
def test_prop_vif_one_for_orthogonal_columns(p, seed):
    u = np.random.default_rng(seed).normal(size=(30, p))
    u -= u.mean(axis=0)
    q, _ = np.linalg.qr(u)  # centered orthonormal columns: pairwise sample correlations are 0
    df = pd.DataFrame(q * np.arange(1, p + 1) + 5.0, columns=[f"c{j}" for j in range(p)])
    assert_allclose(list(vif(df).vifs.values()), np.ones(p), rtol=1e-10)


def _with_outcome() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    z = rng.normal(size=200) + 0.2 * x
    return pd.DataFrame({"x": x, "z": z, "y": x + 0.5 * rng.normal(size=200)})


def test_vif_default_columns_warn_and_outcome_is_excluded():
    """Regression: vif(data) silently used the outcome column as a predictor (VIF of x inflated ~5x here)."""
    df = _with_outcome()
    with pytest.warns(UserWarning, match=r"`columns` not given: using every numeric column .*\['x', 'z', 'y'\]"):
        naive = vif(df)
    declared = vif(df, y="y")
    explicit = vif(df, ["x", "z"])
    assert declared.variables == ("x", "z")
    assert_allclose(declared.to_frame()["vif"], explicit.to_frame()["vif"], rtol=1e-15)
    assert naive.vifs["x"] > 4 * declared.vifs["x"]
    # closed form with two predictors: VIF = 1 / (1 - r^2)
    r = np.corrcoef(df["x"], df["z"])[0, 1]
    assert_allclose(declared.vifs["x"], 1.0 / (1.0 - r**2), rtol=1e-10)
    with pytest.raises(ValueError, match="`columns` contains the outcome `y` 'y'"):
        vif(df, ["x", "y"], y="y")
    with pytest.raises(KeyError, match="`y`: 'yy' is not a column"):
        vif(df, y="yy")


def test_vif_to_frame_is_per_predictor():
    """Regression: to_frame() returned one summary row while the per-predictor table was only in .table."""
    res = vif(_with_outcome(), y="y")
    frame = res.to_frame()
    assert list(frame.columns) == ["column", "vif", "tolerance", "r_squared"]
    assert frame["column"].tolist() == ["x", "z"]
    pd.testing.assert_frame_equal(frame, res.table)

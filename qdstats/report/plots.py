"""Report figures (matplotlib, Agg canvas, no display, no pyplot global state).

Each function takes a table from :mod:`qdstats.report.data` and returns a :class:`matplotlib.figure.Figure`
bound to an Agg canvas; :func:`figure_png` turns it into PNG bytes (deterministic: no timestamp or
software metadata). Plotted artists carry ``gid`` labels (``'estimates'``, ``'zero-line'``,
``'reference'``...) so tests can read back exactly what was drawn.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

__all__ = ["alignment_scatter", "bitwidth_ladder", "damage_scatter", "did_forest", "did_vs_bits", "figure_png", "forest_plot",
           "premium_bars", "sensitivity_heatmap", "specification_curve_plot"]

_REF_COLOR = "#d95f02"
_EST_COLOR = "#1b6ca8"
_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
            "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6")


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _need_columns(table: pd.DataFrame, cols: Sequence[str], param: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"`{param}` must be a pandas DataFrame; got {type(table).__name__}.")
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(f"`{param}` lacks column(s) {missing}; it has {list(table.columns)}.")
    if table.empty:
        raise ValueError(f"`{param}` is empty; nothing to plot.")


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """PNG bytes of a figure, without metadata (byte-identical for identical figures)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _panels(table: pd.DataFrame, keys: Sequence[str]) -> list[tuple[tuple[str, ...], pd.DataFrame]]:
    out = []
    for k, g in table.groupby(list(keys), sort=True):
        out.append((tuple(str(x) for x in (k if isinstance(k, tuple) else (k,))), g))
    return out


def forest_plot(
    table: pd.DataFrame,
    *,
    reference: str | None = "eng_Latn",
    unit: str = "bit/byte",
    title: str | None = None,
) -> Figure:
    """Forest plot of per-language Δ with CIs, one panel per (model, condition).

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`qdstats.report.data.degradation_table` (columns ``model_id, condition_short,
        language, estimate, ci_low, ci_high, n``; panels are split by ``model_key`` and titled by
        ``model_label`` when those columns exist).
    reference : str or None, default 'eng_Latn'
        Language drawn in a distinct color and marker, with ``(ref)`` in its label.
    unit : str, default 'bit/byte'
        Unit for the x axis label.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Each panel has a dashed vertical line at 0 (``gid='zero-line'``), the estimates (``gid='estimates'``,
        x = estimate, y = row) with horizontal CI bars, and y tick labels ``language (n=...)``.

    Raises
    ------
    TypeError, ValueError
        ``table`` is not a DataFrame, lacks a column or is empty.
    Notes
    -----
    Display only (no statistics are computed here). Not independently validated; the tests read the drawn
    artists back (by ``gid``) and compare them with the input table exactly.
    """
    _need_columns(table, ["model_id", "condition_short", "language", "estimate", "ci_low", "ci_high", "n"], "table")
    key = "model_key" if "model_key" in table.columns else "model_id"
    panels = _panels(table, [key, "condition_short"])
    n_lang = max(len(g) for _, g in panels)
    fig = _new_figure(4.2 * len(panels), max(2.4, 0.32 * n_lang + 1.4))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=False)[0]
    for ax, ((_, cond), g) in zip(axes, panels):
        model_id = g["model_label"].iloc[0] if "model_label" in g.columns else g["model_id"].iloc[0]
        g = g.sort_values("language", ascending=False, kind="stable")
        y = np.arange(len(g), dtype=float)
        est = g["estimate"].to_numpy(dtype=float)
        lo = g["ci_low"].to_numpy(dtype=float)
        hi = g["ci_high"].to_numpy(dtype=float)
        is_ref = (g["language"] == reference).to_numpy() if reference else np.zeros(len(g), dtype=bool)
        ax.axvline(0.0, color="0.2", linestyle="--", linewidth=1.3, gid="zero-line", zorder=1)
        ax.hlines(y, lo, hi, color=np.where(is_ref, _REF_COLOR, _EST_COLOR).tolist(), linewidth=1.8, gid="ci-bars",
                  zorder=2)
        ax.plot(est, y, linestyle="none", marker="o", color=_EST_COLOR, gid="estimates", zorder=3)
        if is_ref.any():
            ax.plot(est[is_ref], y[is_ref], linestyle="none", marker="D", markersize=8, color=_REF_COLOR,
                    gid="reference", zorder=4)
        labels = [f"{lang}{' (ref)' if r else ''} (n={int(n) if not pd.isna(n) else '?'})"
                  for lang, r, n in zip(g["language"], is_ref, g["n"])]
        ax.set_yticks(y, labels)
        for tick, r in zip(ax.get_yticklabels(), is_ref):
            if r:
                tick.set_color(_REF_COLOR)
                tick.set_fontweight("bold")
        level = g["ci_level"].iloc[0] if "ci_level" in g else math.nan
        lvl = f"{level:.0%} CI" if not pd.isna(level) else "CI"
        ax.set_xlabel(f"Δ {unit} vs baseline ({lvl})")
        ax.set_title(f"{model_id}\n{cond}", fontsize=9)
        ax.grid(axis="x", color="0.9")
    if title:
        fig.suptitle(title)
    return fig


def sensitivity_heatmap(
    matrix: pd.DataFrame,
    *,
    unit: str = "bit/byte",
    title: str | None = None,
    annotate: bool | None = None,
) -> Figure:
    """Layer (site) x language heatmap of sensitivity.

    Parameters
    ----------
    matrix : pandas.DataFrame
        Output of :func:`qdstats.report.data.sensitivity_matrix` (index sites, columns languages).
    unit : str, default 'bit/byte'
        Colorbar unit.
    title : str, optional
        Axes title.
    annotate : bool, optional
        Write each value in its cell (default: when the matrix has at most 16 x 12 cells).

    Returns
    -------
    matplotlib.figure.Figure
        One image (``gid='heatmap'``) whose array equals ``matrix.to_numpy()`` (NaN cells masked, shown
        grey); the color scale is diverging and centred at 0 when values of both signs occur.

    Raises
    ------
    TypeError, ValueError
        ``matrix`` is not a non-empty DataFrame.
    Notes
    -----
    Display only (no statistics are computed here). Not independently validated; the tests read the drawn
    artists back (by ``gid``) and compare them with the input table exactly.
    """
    if not isinstance(matrix, pd.DataFrame):
        raise TypeError(f"`matrix` must be a pandas DataFrame; got {type(matrix).__name__}.")
    if matrix.empty:
        raise ValueError("`matrix` is empty; nothing to plot.")
    vals = matrix.to_numpy(dtype=float)
    n_site, n_lang = vals.shape
    fig = _new_figure(max(4.0, 0.7 * n_lang + 2.5), max(2.6, 0.3 * n_site + 1.6))
    ax = fig.add_subplot()
    finite = vals[np.isfinite(vals)]
    vmin = float(finite.min()) if finite.size else 0.0
    vmax = float(finite.max()) if finite.size else 1.0
    if vmin < 0.0 < vmax:
        norm: Normalize = TwoSlopeNorm(vcenter=0.0, vmin=vmin, vmax=vmax)
        cmap = "RdBu_r"
    else:
        norm = Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-12)
        cmap = "Reds" if vmin >= 0.0 else "Blues_r"
    import matplotlib as mpl

    cm = mpl.colormaps[cmap].with_extremes(bad="0.8")
    im = ax.imshow(np.ma.masked_invalid(vals), aspect="auto", cmap=cm, norm=norm, interpolation="nearest")
    im.set_gid("heatmap")
    ax.set_xticks(np.arange(n_lang), [str(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(np.arange(n_site), [str(i) for i in matrix.index])
    ax.set_xlabel("language")
    ax.set_ylabel("site")
    fig.colorbar(im, ax=ax, label=f"Δ {unit}")
    if annotate is None:
        annotate = n_site <= 16 and n_lang <= 12
    if annotate:
        for i in range(n_site):
            for j in range(n_lang):
                v = vals[i, j]
                dark = bool(np.isfinite(v)) and abs(float(norm(v)) - 0.5) > 0.3 if cmap == "RdBu_r" else (
                    bool(np.isfinite(v)) and float(norm(v)) > 0.6)
                ax.text(j, i, "–" if not np.isfinite(v) else f"{v:.3g}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def alignment_scatter(
    pairs: pd.DataFrame,
    fits: pd.DataFrame,
    *,
    alignment_label: str = "align.boundary_f1",
    damage_label: str = "eval.word_delta_nll",
    title: str | None = None,
) -> Figure:
    """Alignment vs damage scatter with one least-squares line per language, one panel per (model, condition).

    Parameters
    ----------
    pairs, fits : pandas.DataFrame
        Outputs of :func:`qdstats.report.data.alignment_damage`.
    alignment_label, damage_label : str
        Axis labels.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Per language a scatter (``gid='points:<language>'``, offsets = (alignment, damage)) and, where the
        slope is defined, a line (``gid='fit:<language>'``) through ``intercept + slope * x``; the legend
        shows slope, CI and the numbers of words and sentences.

    Raises
    ------
    TypeError, ValueError
        An input is not a DataFrame, lacks a column or is empty.
    Notes
    -----
    Display only (no statistics are computed here). Not independently validated; the tests read the drawn
    artists back (by ``gid``) and compare them with the input table exactly.
    """
    _need_columns(pairs, ["model_id", "condition", "language", "alignment", "damage"], "pairs")
    if not isinstance(fits, pd.DataFrame):
        raise TypeError(f"`fits` must be a pandas DataFrame; got {type(fits).__name__}.")
    panels = _panels(pairs, ["model_id", "condition"])
    fig = _new_figure(5.2 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    languages = sorted(pairs["language"].unique())
    colors = {lang: _PALETTE[i % len(_PALETTE)] for i, lang in enumerate(languages)}
    for ax, ((model_id, cond), g) in zip(axes, panels):
        for lang, gl in g.groupby("language", sort=True):
            x = gl["alignment"].to_numpy(dtype=float)
            yv = gl["damage"].to_numpy(dtype=float)
            fit = fits[(fits["model_id"] == model_id) & (fits["condition"] == cond) & (fits["language"] == lang)]
            label = str(lang)
            if len(fit):
                f = fit.iloc[0]
                label += (f": slope {f['slope']:.3g} [{f['ci_low']:.3g}, {f['ci_high']:.3g}], "
                          f"n={int(f['n'])} words / {int(f['n_clusters'])} sent.")
            ax.scatter(x, yv, s=10, alpha=0.5, color=colors[lang], gid=f"points:{lang}", label=label)
            if len(fit) and np.isfinite(fit.iloc[0]["slope"]):
                f = fit.iloc[0]
                xs = np.array([np.min(x), np.max(x)])
                ax.plot(xs, f["intercept"] + f["slope"] * xs, color=colors[lang], linewidth=2.0, gid=f"fit:{lang}")
        ax.axhline(0.0, color="0.5", linestyle=":", linewidth=1.0, gid="zero-line")
        ax.set_xlabel(alignment_label)
        ax.set_ylabel(damage_label)
        ax.set_title(f"{model_id}\n{cond}", fontsize=9)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    return fig


def premium_bars(
    table: pd.DataFrame,
    *,
    reference: str | None = "eng_Latn",
    title: str | None = None,
) -> Figure:
    """Tokenizer premium per language as bars with CI whiskers, one panel per tokenizer.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`qdstats.report.data.tokenizer_premiums`.
    reference : str or None, default 'eng_Latn'
        Reference language, drawn hatched; a dashed line marks parity (premium 1).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Bars (``gid='premium:<language>'``, height = premium), CI whiskers where the records carry a CI,
        and a parity line at 1 (``gid='parity-line'``); tick labels show ``n``.

    Raises
    ------
    TypeError, ValueError
        ``table`` is not a DataFrame, lacks a column or is empty.
    Notes
    -----
    Display only (no statistics are computed here). Not independently validated; the tests read the drawn
    artists back (by ``gid``) and compare them with the input table exactly.
    """
    _need_columns(table, ["tokenizer", "language", "value", "ci_low", "ci_high", "n"], "table")
    panels = _panels(table, ["tokenizer"])
    n_lang = max(len(g) for _, g in panels)
    fig = _new_figure(max(4.0, 0.55 * n_lang + 2.0) * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, ((tok,), g) in zip(axes, panels):
        g = g.sort_values("language", kind="stable")
        x = np.arange(len(g), dtype=float)
        v = g["value"].to_numpy(dtype=float)
        lo = g["ci_low"].to_numpy(dtype=float)
        hi = g["ci_high"].to_numpy(dtype=float)
        for xi, vi, lang in zip(x, v, g["language"]):
            is_ref = lang == reference
            ax.bar(xi, vi, color=_REF_COLOR if is_ref else _EST_COLOR, hatch="//" if is_ref else None,
                   edgecolor="black", linewidth=0.5, gid=f"premium:{lang}")
        has_ci = np.isfinite(lo) & np.isfinite(hi)
        if has_ci.any():
            err = np.vstack([v[has_ci] - lo[has_ci], hi[has_ci] - v[has_ci]])
            ax.errorbar(x[has_ci], v[has_ci], yerr=err, fmt="none", ecolor="black", capsize=3, gid="ci")
        ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1.0, gid="parity-line")
        labels = [f"{lang}{' (ref)' if lang == reference else ''}\n(n={int(n) if not pd.isna(n) else '?'})"
                  for lang, n in zip(g["language"], g["n"])]
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("token premium vs reference")
        ax.set_title(str(tok), fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def _did_label(lang: str, n: object, names: dict[str, str] | None) -> str:
    name = (names or {}).get(lang)
    shown = f"{name} ({lang})" if name else lang
    return f"{shown} (n={int(n) if n is not None and not pd.isna(n) else '?'})"  # type: ignore[call-overload]


def did_forest(
    table: pd.DataFrame,
    *,
    reference: str = "eng_Latn",
    names: dict[str, str] | None = None,
    conditions: Sequence[str] | None = None,
    unit: str = "bit/byte",
    margin: float | None = None,
    title: str | None = None,
) -> Figure:
    """Forest plot of the difference in differences vs the reference, sorted by effect, one panel per condition.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``condition_short, language, did, did_ci_low, did_ci_high, n`` (as
        :func:`qdstats.report.data.degradation_table` writes them); the reference rows are left out (their DiD is 0
        by definition).
    reference : str, default 'eng_Latn'
        Reference language (named on the x axis).
    names : dict, optional
        Language code -> display name for the tick labels.
    conditions : sequence of str, optional
        Panels in this order (default: the table's order of first appearance).
    unit : str, default 'bit/byte'
    margin : float, optional
        Draw the equivalence band ``±margin`` of the headline rule (``gid='margin'``).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Per panel: a dashed line at 0 (``gid='zero-line'``), the estimates (``gid='did'``, x = DiD, y = row; rows
        sorted so the largest DiD is on top) with CI bars (``gid='did-ci'``); tick labels ``language (n=...)``.

    Raises
    ------
    TypeError, ValueError
        ``table`` is not a DataFrame, lacks a column or has no non-reference row.

    Notes
    -----
    Display only. Not independently validated; the tests read the drawn artists back by ``gid``.
    """
    _need_columns(table, ["condition_short", "language", "did", "did_ci_low", "did_ci_high", "n"], "table")
    t = table[table["language"] != reference]
    if t.empty:
        raise ValueError("`table` has no row other than the reference language; nothing to plot.")
    keys = list(conditions) if conditions is not None else list(dict.fromkeys(t["condition_short"]))
    keys = [k for k in keys if (t["condition_short"] == k).any()]
    n_lang = max(int((t["condition_short"] == k).sum()) for k in keys)
    fig = _new_figure(3.6 * len(keys) + 1.2, max(2.4, 0.34 * n_lang + 1.5))
    axes = fig.subplots(1, len(keys), squeeze=False, sharey=False)[0]
    for ax, key in zip(axes, keys):
        g = t[t["condition_short"] == key].sort_values("did", ascending=True, kind="stable", na_position="first")
        y = np.arange(len(g), dtype=float)
        est = g["did"].to_numpy(dtype=float)
        lo = g["did_ci_low"].to_numpy(dtype=float)
        hi = g["did_ci_high"].to_numpy(dtype=float)
        if margin is not None:
            ax.axvspan(-margin, margin, color="0.93", zorder=0, gid="margin")
        ax.axvline(0.0, color="0.2", linestyle="--", linewidth=1.2, gid="zero-line", zorder=1)
        ax.hlines(y, lo, hi, color=_EST_COLOR, linewidth=1.8, gid="did-ci", zorder=2)
        ax.plot(est, y, linestyle="none", marker="o", color=_EST_COLOR, gid="did", zorder=3)
        ax.set_yticks(y, [_did_label(str(lang), n, names) for lang, n in zip(g["language"], g["n"])], fontsize=8)
        ax.set_xlabel(f"Δ − Δ({reference}), {unit}")
        ax.set_title(str(key), fontsize=9)
        ax.grid(axis="x", color="0.9")
    if title:
        fig.suptitle(title)
    return fig


def bitwidth_ladder(
    table: pd.DataFrame,
    *,
    reference: str = "eng_Latn",
    names: dict[str, str] | None = None,
    unit: str = "bit/byte",
    title: str | None = None,
) -> Figure:
    """Bits per byte per language along a ladder of conditions (fp32 → INT8 → INT4 → INT3), baseline level shown.

    Parameters
    ----------
    table : pandas.DataFrame
        Long table with columns ``step`` (display label, in ladder order), ``language``, ``level`` (mean bits per
        byte under that step on the language's items; the first step is the baseline) and ``ci_low, ci_high``
        (CI of the level's change from the baseline, shifted to the level; NaN for the baseline).
    reference : str, default 'eng_Latn'
        Drawn in the reference color, thicker.
    names : dict, optional
        Language code -> display name for the legend.
    unit : str, default 'bit/byte'
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One line per language (``gid='ladder:<language>'``, x = step index, y = level), the baseline points
        (``gid='baseline'``), and CI whiskers where given.

    Raises
    ------
    TypeError, ValueError
        ``table`` is not a DataFrame, lacks a column or is empty.

    Notes
    -----
    Display only. Not independently validated; the tests read the drawn artists back by ``gid``.
    """
    _need_columns(table, ["step", "language", "level", "ci_low", "ci_high"], "table")
    steps = list(dict.fromkeys(table["step"]))
    langs = list(dict.fromkeys(table["language"]))
    fig = _new_figure(max(4.5, 1.1 * len(steps) + 3.0), 4.2)
    ax = fig.add_subplot()
    x_of = {s: i for i, s in enumerate(steps)}
    for i, lang in enumerate(langs):
        g = table[table["language"] == lang]
        x = np.array([x_of[s] for s in g["step"]], dtype=float)
        yv = g["level"].to_numpy(dtype=float)
        is_ref = lang == reference
        color = _REF_COLOR if is_ref else _PALETTE[i % len(_PALETTE)]
        label = (names or {}).get(lang, lang) + (" (ref)" if is_ref else "")
        ax.plot(x, yv, marker="o", color=color, linewidth=2.6 if is_ref else 1.4, gid=f"ladder:{lang}", label=label)
        lo = g["ci_low"].to_numpy(dtype=float)
        hi = g["ci_high"].to_numpy(dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.errorbar(x[ok], yv[ok], yerr=np.vstack([yv[ok] - lo[ok], hi[ok] - yv[ok]]), fmt="none", ecolor=color,
                        capsize=2, linewidth=0.8)
    base = table[table["step"] == steps[0]]
    ax.plot(np.zeros(len(base)), base["level"].to_numpy(dtype=float), linestyle="none", marker="s", markersize=8,
            markerfacecolor="none", markeredgecolor="0.2", gid="baseline", label=f"baseline ({steps[0]})")
    ax.set_xticks(np.arange(len(steps)), steps, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"{unit} (mean over the language's items)")
    ax.grid(axis="y", color="0.9")
    ax.legend(fontsize=7, loc="upper left", ncols=2)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def damage_scatter(
    table: pd.DataFrame,
    *,
    x: Sequence[tuple[str, str]] = (("premium", "tokenizer premium vs reference (tokens/tokens)"),
                                    ("bytes_per_token", "bytes per token")),
    reference: str = "eng_Latn",
    unit: str = "bit/byte",
    title: str | None = None,
) -> Figure:
    """Tokenizer premium and bytes per token vs damage (DiD), points labelled with the language codes.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per language: ``language``, ``did`` (the damage vs the reference, bit/byte), optional
        ``did_ci_low, did_ci_high`` (vertical whiskers) and the x columns.
    x : sequence of (column, axis label)
        One panel per entry.
    reference : str, default 'eng_Latn'
    unit : str, default 'bit/byte'
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Per panel a scatter (``gid='points:<column>'``, offsets = (x, DiD)) and one text label per point
        (``gid='label:<language>'``).

    Raises
    ------
    TypeError, ValueError
        ``table`` is not a DataFrame, lacks a column or is empty.

    Notes
    -----
    Display only (no fitted line: with 8 languages a correlation is a claim with a wide CI, not a picture).
    """
    _need_columns(table, ["language", "did", *[c for c, _ in x]], "table")
    fig = _new_figure(4.4 * len(x), 3.8)
    axes = fig.subplots(1, len(x), squeeze=False)[0]
    for ax, (col, label) in zip(axes, x):
        xv = table[col].to_numpy(dtype=float)
        yv = table["did"].to_numpy(dtype=float)
        ax.scatter(xv, yv, color=_EST_COLOR, s=24, gid=f"points:{col}", zorder=3)
        if {"did_ci_low", "did_ci_high"} <= set(table.columns):
            lo = table["did_ci_low"].to_numpy(dtype=float)
            hi = table["did_ci_high"].to_numpy(dtype=float)
            ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(xv)
            if ok.any():
                ax.errorbar(xv[ok], yv[ok], yerr=np.vstack([yv[ok] - lo[ok], hi[ok] - yv[ok]]), fmt="none",
                            ecolor="0.6", linewidth=0.8, zorder=2)
        for lang, xi, yi in zip(table["language"], xv, yv):
            if np.isfinite(xi) and np.isfinite(yi):
                ax.annotate(str(lang).split("_")[0], (xi, yi), xytext=(3, 3), textcoords="offset points",
                            fontsize=8, color=_REF_COLOR if lang == reference else "black", gid=f"label:{lang}")
        ax.axhline(0.0, color="0.5", linestyle=":", linewidth=1.0, gid="zero-line")
        ax.set_xlabel(label)
        ax.set_ylabel(f"Δ − Δ({reference}), {unit}")
    if title:
        fig.suptitle(title)
    return fig


_FAMILY_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def did_vs_bits(
    table: pd.DataFrame,
    *,
    reference: str = "eng_Latn",
    names: dict[str, str] | None = None,
    unit: str = "bit/byte",
    title: str | None = None,
    bits: str = "model_bits_per_weight",
) -> Figure:
    """Difference in differences vs measured bits per weight, one panel per language, one line per format family.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``language, family, did, did_ci_low, did_ci_high`` and the ``bits`` column (the degradation table of
        one model merged with :func:`qdstats.report.data.storage_table` on the condition); reference rows are left out.
    reference : str, default 'eng_Latn'
    names : dict, optional
        Language code -> panel title.
    unit : str, default 'bit/byte'
    title : str, optional
    bits : {'model_bits_per_weight', 'bits_per_weight'}, default 'model_bits_per_weight'
        The x axis: storage of the whole model (tensors a format leaves alone counted at 16 bits), which compares
        formats that convert different sets of tensors (a protection plan, a format that skips some shapes), or of the converted
        tensors only.

    Returns
    -------
    matplotlib.figure.Figure
        Per panel a dashed zero line (``gid='zero-line'``) and per family a line through its conditions sorted by
        bits per weight (``gid='family:<name>'``, x = bits per weight, y = DiD) with CI bars.

    Raises
    ------
    TypeError, ValueError
        ``table`` is not a DataFrame, lacks a column or has no non-reference row with a finite bits per weight.
    """
    if bits not in ("model_bits_per_weight", "bits_per_weight"):
        raise ValueError(f"`bits` must be one of {{'model_bits_per_weight', 'bits_per_weight'}}; got {bits!r}.")
    _need_columns(table, ["language", "family", bits, "did", "did_ci_low", "did_ci_high"], "table")
    t = table[(table["language"] != reference) & np.isfinite(table[bits].astype(float))]
    if t.empty:
        raise ValueError(f"`table` has no non-reference row with a finite {bits}.")
    t = t.assign(_x=t[bits].astype(float))
    langs = sorted(t["language"].unique())
    families = sorted(t["family"].unique())
    ncol = min(4, len(langs))
    nrow = math.ceil(len(langs) / ncol)
    fig = _new_figure(3.1 * ncol + 1.8, 2.6 * nrow + 0.6)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    xs = t["_x"]
    pad = 0.05 * max(float(xs.max() - xs.min()), 1.0)
    xlim = (float(xs.min()) - pad, float(xs.max()) + pad)
    for k, ax in enumerate(axes.flat):
        if k >= len(langs):
            ax.set_visible(False)
            continue
        lang = langs[k]
        sub = t[t["language"] == lang]
        ax.axhline(0.0, color="0.4", lw=0.8, ls="--", gid="zero-line")
        for j, fam in enumerate(families):
            g = sub[sub["family"] == fam].sort_values("_x")
            if g.empty:
                continue
            x = g["_x"].to_numpy(float)
            y = g["did"].to_numpy(float)
            err = np.vstack([y - g["did_ci_low"].to_numpy(float), g["did_ci_high"].to_numpy(float) - y])
            color = _PALETTE[j % len(_PALETTE)]
            ax.errorbar(x, y, yerr=np.where(np.isfinite(err), err, 0.0), fmt="none", ecolor=color, lw=0.8, capsize=2)
            ax.plot(x, y, color=color, lw=1.2, marker=_FAMILY_MARKERS[j % len(_FAMILY_MARKERS)], ms=4, label=fam,
                    gid=f"family:{fam}")
        ax.set_title((names or {}).get(lang, lang), fontsize=9)
        ax.set_xlim(*xlim)
        if k % ncol == 0:
            ax.set_ylabel(f"Δ − Δ({reference}) [{unit}]", fontsize=8)
        if k >= len(langs) - ncol:
            ax.set_xlabel("bits per weight, whole model" if bits == "model_bits_per_weight"
                          else "bits per weight, converted tensors", fontsize=8)
        ax.tick_params(labelsize=7)
    legend: dict[str, Any] = {}
    for ax in axes.flat:  # a family may be missing from some panels: collect its handle from any of them
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    fig.legend(list(legend.values()), list(legend), loc="outside right upper", fontsize=7, title="format family",
               title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


#: Marker colour of a specification's verdict in :func:`specification_curve_plot`.
VERDICT_COLORS: dict[str, str] = {"supported": "#1b9e77", "not_supported": "#7570b3", "inconclusive": "#e6ab02",
                                  "insufficient_data": "#999999", "error": "#000000"}


def specification_curve_plot(
    frame: pd.DataFrame,
    *,
    claim: str = "claim_id",
    primary: str = "bits_per_byte/first_in",
    unit: str = "effect",
    title: str | None = None,
) -> Figure:
    """Specification curve: per claim, the estimate and CI under each pre-declared specification, sorted by estimate,
    coloured by the verdict that specification gives.

    The specifications count damage in different units (bits per byte, per sentence, relative change...), so where
    every row has a positive ``min_abs_effect`` (each specification's minimum effect in its own unit) the estimates
    and CIs are drawn in units of it: 1 is the smallest effect that specification calls relevant, and the ranks
    compare like with like. Otherwise the raw estimates are drawn (meaningful within one unit only).

    Parameters
    ----------
    frame : pandas.DataFrame
        Long table, one row per (claim, specification): columns ``claim`` (the panel), ``specification``,
        ``estimate``, ``ci_low``, ``ci_high`` and ``verdict``
        (:func:`qdstats.claims.render.specification_frame` of a claims table, or
        ``SpecificationCurve.to_frame()`` with a claim column); optional ``min_abs_effect``. A ``summary`` row is
        ignored.
    claim : str, default 'claim_id'
        Column naming the panels.
    primary : str, default 'bits_per_byte/first_in'
        The specification of the table's own row (drawn with a ring, ``gid='primary:<claim>'``).
    unit : str, default 'effect'
        Y-axis label when the estimates are drawn raw.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Per panel a dashed zero line (``gid='zero-line'``), CI bars and one point per specification
        (``gid='spec:<claim>'``, x = rank, y = estimate / min_abs_effect or the estimate), dotted lines at ±1
        (``gid='min-effect'``) when scaled, x tick labels = the specifications.

    Raises
    ------
    TypeError, ValueError
        ``frame`` is not a DataFrame, lacks a column or has no specification row.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"claim_id": ["H1.x"] * 2, "specification": ["bits_per_byte/first_in", "bits_per_char/first_in"],
    ...                   "estimate": [0.01, 0.02], "ci_low": [-0.01, 0.005], "ci_high": [0.03, 0.035],
    ...                   "verdict": ["inconclusive", "supported"]})
    >>> fig = specification_curve_plot(f)
    >>> [len(c.get_offsets()) for c in fig.axes[0].collections if c.get_gid() == "spec:H1.x"]
    [2]
    """
    _need_columns(frame, [claim, "specification", "estimate", "ci_low", "ci_high", "verdict"], "frame")
    t = frame[frame["specification"] != "summary"]
    if t.empty:
        raise ValueError("`frame` has no specification row.")
    mae = pd.to_numeric(t["min_abs_effect"], errors="coerce") if "min_abs_effect" in t.columns else None
    scaled = mae is not None and bool(np.all(np.isfinite(mae.to_numpy(float)) & (mae.to_numpy(float) > 0)))
    if scaled:
        t = t.assign(**{c: pd.to_numeric(t[c], errors="coerce") / mae for c in ("estimate", "ci_low", "ci_high")})
    claims = list(dict.fromkeys(t[claim].astype(str)))
    ncol = min(4, len(claims))
    nrow = math.ceil(len(claims) / ncol)
    n_spec = int(t.groupby(claim)["specification"].count().max())
    fig = _new_figure(max(3.2, 0.32 * n_spec + 1.2) * ncol + 1.6, 3.0 * nrow + 0.8)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(claims):
            ax.set_visible(False)
            continue
        c = claims[k]
        sub = t[t[claim].astype(str) == c].copy()
        sub["_e"] = pd.to_numeric(sub["estimate"], errors="coerce")
        sub = sub.sort_values("_e", kind="stable", na_position="last")
        x = np.arange(len(sub))
        y = sub["_e"].to_numpy(float)
        lo = pd.to_numeric(sub["ci_low"], errors="coerce").to_numpy(float)
        hi = pd.to_numeric(sub["ci_high"], errors="coerce").to_numpy(float)
        ax.axhline(0.0, color="0.4", lw=0.8, ls="--", gid="zero-line")
        if scaled:
            for yy in (-1.0, 1.0):
                ax.axhline(yy, color="0.6", lw=0.7, ls=":", gid="min-effect")
        err = np.vstack([y - lo, hi - y])
        ax.errorbar(x, y, yerr=np.where(np.isfinite(err), err, 0.0), fmt="none", ecolor="0.5", lw=0.8, capsize=2)
        colors = [VERDICT_COLORS.get(str(v), "#000000") for v in sub["verdict"]]
        ax.scatter(x, y, c=colors, s=22, zorder=3, gid=f"spec:{c}")
        is_primary = (sub["specification"] == primary).to_numpy()
        if is_primary.any():
            ax.scatter(x[is_primary], y[is_primary], s=70, facecolors="none", edgecolors="k", lw=1.0, zorder=4,
                       gid=f"primary:{c}")
        ax.set_xticks(x, [str(s).replace("/", "\n") for s in sub["specification"]], rotation=90, fontsize=6)
        ax.set_title(c, fontsize=8)
        if k % ncol == 0:
            ax.set_ylabel("estimate / minimum effect" if scaled else unit, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    from matplotlib.lines import Line2D

    present = [v for v in VERDICT_COLORS if v in set(t["verdict"].astype(str))]
    handles = [Line2D([], [], ls="", marker="o", color=VERDICT_COLORS[v], label=v) for v in present]
    handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec="k", ms=8, label=f"primary ({primary})"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, title="verdict", title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig

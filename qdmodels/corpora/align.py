"""Place gold morph boundaries on a surface word when the morphs do not concatenate to it.

Gold segmentations often give *underlying* parts: Hebrew UD writes ``בבית`` as ``ב + ה + בית`` (the article is
elided after a prefix) and ``ביתו`` as ``בית_ + _של_ + הוא``; Korean Kaist writes ``했다`` as ``하 + 었 + 다``;
SIGMORPHON 2022 writes ``marreront`` as ``marre + er + eront``. The rule used everywhere in :mod:`qdmodels.corpora`:

1. If the parts concatenate exactly to the surface form, boundaries are the cumulative part lengths
   (``surface_true=True``).
2. Otherwise the concatenated parts are aligned to the surface string with a Levenshtein alignment (match 0,
   substitution 1, deletion of a part character 1, insertion of a surface character 1). The backtrace, run from the
   end, prefers a match, then deletion of a part character, then substitution, then insertion; so gaps are placed as early as the optimum
   allows. The boundary after a part is the number of surface characters aligned up to the last character of
   that part, plus any surface characters inserted right after it (insertions attach to the preceding part).
   Boundaries at 0 or at the word end (parts that align to nothing, e.g. an elided article) are dropped, and
   duplicates merged; ``surface_true=False``.

So ``ב+ה+בית`` on ``בבית`` gives the boundary ``{1}`` (``ב|בית``), and ``בית+של+הוא`` on ``ביתו`` gives ``{3}``
(``בית|ו``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["align_boundaries", "segmented_word"]


def align_boundaries(surface: str, parts: Sequence[str]) -> tuple[tuple[int, ...], bool]:
    """Internal boundary offsets (characters of ``surface``) for gold ``parts``, and whether they are surface-true.

    Parameters
    ----------
    surface : str
        The surface word.
    parts : sequence of str
        Gold parts in order (empty strings are ignored).

    Returns
    -------
    (boundaries, surface_true)
        Sorted unique offsets in ``(0, len(surface))``; ``surface_true`` is ``''.join(parts) == surface``.

    Raises
    ------
    ValueError
        If ``surface`` is empty or ``parts`` has no non-empty part.

    Notes
    -----
    Validated against: hand-checked Hebrew (HTB/IAHLTwiki), Korean and SIGMORPHON cases in
    ``tests/qdmodels/corpora/test_align.py``, and the property that surface-true parts give the cumulative lengths;
    not independently validated.

    Examples
    --------
    >>> align_boundaries("בבית", ["ב", "ה", "בית"])
    ((1,), False)
    >>> align_boundaries("unkind", ["un", "kind"])
    ((2,), True)
    """
    if not surface:
        raise ValueError("`surface` must be a non-empty string; got ''.")
    ps = [p for p in parts if p]
    if not ps:
        raise ValueError(f"`parts` must contain at least one non-empty part; got {list(parts)!r}.")
    n = len(surface)
    if "".join(ps) == surface:
        out, pos = [], 0
        for p in ps[:-1]:
            pos += len(p)
            out.append(pos)
        return tuple(sorted({b for b in out if 0 < b < n})), True

    c = "".join(ps)
    m = len(c)
    # dp[i][j]: cost of aligning c[:i] with surface[:j]
    dp = [[0] * (n + 1) for _ in range(m + 1)]
    for i in range(1, m + 1):
        dp[i][0] = i
    for j in range(1, n + 1):
        dp[0][j] = j
    for i in range(1, m + 1):
        ci = c[i - 1]
        row, prev = dp[i], dp[i - 1]
        for j in range(1, n + 1):
            sub = prev[j - 1] + (0 if ci == surface[j - 1] else 1)
            row[j] = min(sub, prev[j] + 1, row[j - 1] + 1)
    # backtrace from the end: diag > delete (part char) > insert (surface char)
    ops: list[str] = []
    i, j = m, n
    while i > 0 or j > 0:
        if i > 0 and j > 0 and c[i - 1] == surface[j - 1] and dp[i][j] == dp[i - 1][j - 1]:
            ops.append("d")  # match
            i, j = i - 1, j - 1
        elif i > 0 and dp[i][j] == dp[i - 1][j] + 1:
            ops.append("x")  # part char deleted (not on the surface)
            i -= 1
        elif i > 0 and j > 0 and dp[i][j] == dp[i - 1][j - 1] + 1:
            ops.append("d")  # substitution
            i, j = i - 1, j - 1
        else:
            ops.append("i")  # surface char inserted
            j -= 1
    ops.reverse()
    # before_next[k] = surface chars consumed just before part char k is consumed (k = 0..m; k = m -> end)
    before_next = [0] * (m + 1)
    i = j = 0
    for op in ops:
        if op == "i":
            j += 1
            continue
        before_next[i] = j
        if op == "d":
            j += 1
        i += 1
    before_next[m] = n
    # insertions attach to the preceding part: boundary after part ending at k is the position just before
    # part char k is consumed (after any insertions)
    ends, pos = [], 0
    for p in ps[:-1]:
        pos += len(p)
        ends.append(before_next[pos])
    return tuple(sorted({b for b in ends if 0 < b < n})), False


def segmented_word(surface: str, parts: Sequence[str], **kw: object):  # -> SegmentedWord
    """Build a :class:`~qdmodels.corpora.types.SegmentedWord` from gold ``parts`` with :func:`align_boundaries`."""
    from qdmodels.corpora.types import SegmentedWord

    bounds, true = align_boundaries(surface, parts)
    return SegmentedWord(
        word=surface,
        morphs=tuple(p for p in parts if p),
        boundaries=bounds,
        byte_boundaries=tuple(len(surface[:b].encode("utf-8")) for b in bounds),
        surface_true=true,
        **kw,  # type: ignore[arg-type]
    )

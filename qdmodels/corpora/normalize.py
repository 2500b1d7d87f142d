"""Text normalization for corpus loaders: NFC always, optional removal of Hebrew niqqud / Arabic harakat.

The steps applied are returned as a tuple of names that goes into ``CorpusRef.normalization`` so a measurement
says exactly which text it was made on.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["NORMALIZATION_STEPS", "normalization_steps", "normalize_text"]

#: Names recorded in ``CorpusRef.normalization``.
NORMALIZATION_STEPS = ("NFC", "strip_hebrew_niqqud", "strip_arabic_harakat")

# Hebrew points and cantillation marks: U+0591-U+05BD, U+05BF, U+05C1-U+05C2, U+05C4-U+05C5, U+05C7.
# Kept: maqaf U+05BE, paseq U+05C0, sof pasuq U+05C3, nun hafukha U+05C6 (punctuation, not vowels).
_HEBREW_NIQQUD = re.compile("[\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7]")
# Arabic harakat: tanwin, short vowels, shadda, sukun (U+064B-U+0652), further marks U+0656-U+065F and the
# superscript (dagger) alef U+0670. Kept: hamza/madda above/below (U+0653-U+0655) because NFC composes them with
# alef into distinct letters (أ إ آ), and tatweel U+0640.
_ARABIC_HARAKAT = re.compile("[\u064b-\u0652\u0656-\u065f\u0670]")

_HEBREW_LANGS = {"heb"}
_ARABIC_LANGS = {"arb", "ara", "ary", "arz", "apc", "acm", "ajp", "aeb", "mey", "shi", "fas", "prs", "pus", "urd",
                 "ckb", "snd", "uig"}


def normalization_steps(language: str | None, *, strip_diacritics: bool = False) -> tuple[str, ...]:
    """Steps :func:`normalize_text` applies for ``language`` (``'heb_Hebr'`` or ``'heb'``).

    Diacritic removal is recorded only where it applies: niqqud for Hebrew, harakat for languages written in
    Arabic script. Other languages get ``('NFC',)`` whatever ``strip_diacritics`` says.
    """
    if not isinstance(strip_diacritics, bool):
        raise TypeError(f"`strip_diacritics` must be True or False; got {strip_diacritics!r}.")
    steps: list[str] = ["NFC"]
    if strip_diacritics and language:
        iso, _, script = language.partition("_")
        if script == "Hebr" or (not script and iso in _HEBREW_LANGS):
            steps.append("strip_hebrew_niqqud")
        elif script == "Arab" or (not script and iso in _ARABIC_LANGS):
            steps.append("strip_arabic_harakat")
    return tuple(steps)


def normalize_text(text: str, steps: tuple[str, ...] = ("NFC",)) -> str:
    """Apply normalization ``steps`` (from :func:`normalization_steps`) to ``text``.

    Parameters
    ----------
    text : str
        Raw text.
    steps : tuple of {'NFC', 'strip_hebrew_niqqud', 'strip_arabic_harakat'}
        Steps, in order; ``'NFC'`` must come first. NFC is applied again after any removal.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If a step name is unknown or ``'NFC'`` is not the first step.

    Notes
    -----
    Validated against: closed-form checks in ``tests/qdmodels/corpora/test_normalize.py`` (vocalized Hebrew and
    Arabic words from UD treebanks reduce to their unvocalized spellings); not independently validated.

    Examples
    --------
    >>> normalize_text("שָׁלוֹם", ("NFC", "strip_hebrew_niqqud"))
    'שלום'
    """
    if not steps or steps[0] != "NFC":
        raise ValueError(f"`steps` must start with 'NFC'; got {steps!r}.")
    for s in steps:
        if s not in NORMALIZATION_STEPS:
            raise ValueError(f"`steps` contains unknown step {s!r}; allowed: {NORMALIZATION_STEPS}.")
    out = unicodedata.normalize("NFC", text)
    if "strip_hebrew_niqqud" in steps:
        out = _HEBREW_NIQQUD.sub("", unicodedata.normalize("NFD", out))
    if "strip_arabic_harakat" in steps:
        out = _ARABIC_HARAKAT.sub("", unicodedata.normalize("NFD", out))
    if len(steps) > 1:
        out = unicodedata.normalize("NFC", out)
    return out

"""Language-code normalization: source codes -> ISO 639-3 + ISO 15924 script (``heb_Hebr``).

Every corpus names languages its own way (NTREX ``zho-CN``, UD ``he``, ``dataset_build`` ``ara``). The toolkit
uses one form everywhere, ``<ISO 639-3>_<ISO 15924>`` (the FLORES-200 / NLLB convention), and keeps the source's
own code next to it (``ParallelItem.source_code``).

Choices (documented in ``docs/corpora.md``):

* macrolanguage codes are kept as the source gives them (``msa``, ``swa``, ``fas``, ``uzb``, ``aze``) except
  ``ara`` (``dataset_build``), mapped to ``arb_Arab`` because its text is Modern Standard Arabic, which is what
  NTREX calls ``arb``; and ``nor`` (``dataset_build``), mapped to ``nob_Latn`` because its text declares itself
  Bokmål;
* regional variants share the language code (``eng-GB``, ``eng-US``, ``eng-IN`` and the source ``eng`` are all
  ``eng_Latn``); corpus loaders keep them apart by source code;
* Korean is ``kor_Hang`` and Japanese ``jpn_Jpan`` (FLORES-200 usage), Chinese ``zho_Hans`` / ``zho_Hant``,
  Cantonese ``yue_Hant``.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass

from qdstats.validation import UnknownNameError, did_you_mean

__all__ = [
    "DATASET_BUILD_LANGUAGES",
    "NTREX_LANGUAGES",
    "UD_LANGUAGES",
    "LanguageInfo",
    "dominant_script",
    "normalize_language",
]


@dataclass(frozen=True)
class LanguageInfo:
    """One source language code and its normalized form."""

    source_code: str
    code: str  # ISO 639-3 + "_" + ISO 15924
    name: str

    @property
    def iso639_3(self) -> str:
        return self.code.split("_")[0]

    @property
    def script(self) -> str:
        return self.code.split("_")[1]


def _table(rows: str) -> dict[str, LanguageInfo]:
    out: dict[str, LanguageInfo] = {}
    for line in rows.strip().splitlines():
        src, code, name = line.split(maxsplit=2)
        out[src] = LanguageInfo(source_code=src, code=code, name=name)
    return out


#: NTREX-128 file codes (``newstest2019-ref.<code>.txt``; ``eng`` is the source file ``newstest2019-src.eng.txt``)
#: and the two Swiss German files of ``NTREX-additional`` listed in its LANGUAGES.tsv.
NTREX_LANGUAGES: dict[str, LanguageInfo] = _table("""
afr afr_Latn Afrikaans
amh amh_Ethi Amharic
arb arb_Arab Arabic
aze-Latn aze_Latn Azerbaijani (Latin)
bak bak_Cyrl Bashkir
bel bel_Cyrl Belarusian
bem bem_Latn Bemba
ben ben_Beng Bengali
bod bod_Tibt Tibetan
bos bos_Latn Bosnian
bul bul_Cyrl Bulgarian
cat cat_Latn Catalan
ces ces_Latn Czech
ckb-Arab ckb_Arab Central Kurdish (Sorani)
cym cym_Latn Welsh
dan dan_Latn Danish
deu deu_Latn German
div div_Thaa Divehi
dzo dzo_Tibt Dzongkha
ell ell_Grek Greek
eng eng_Latn English (source)
eng-GB eng_Latn English (British)
eng-IN eng_Latn English (India)
eng-US eng_Latn English (US)
est est_Latn Estonian
eus eus_Latn Basque
ewe ewe_Latn Ewe
fao fao_Latn Faroese
fas fas_Arab Persian
fij fij_Latn Fijian
fil fil_Latn Filipino
fin fin_Latn Finnish
fra fra_Latn French
fra-CA fra_Latn French (Canada)
fuc fuc_Latn Pulaar
gle gle_Latn Irish
glg glg_Latn Galician
gsw-BE gsw_Latn Swiss German (Bern German)
gsw-ZH gsw_Latn Swiss German (Zurich German)
guj guj_Gujr Gujarati
hau hau_Latn Hausa
heb heb_Hebr Hebrew
hin hin_Deva Hindi
hmn hmn_Latn Hmong
hrv hrv_Latn Croatian
hun hun_Latn Hungarian
hye hye_Armn Armenian
ibo ibo_Latn Igbo
ind ind_Latn Indonesian
isl isl_Latn Icelandic
ita ita_Latn Italian
jpn jpn_Jpan Japanese
kan kan_Knda Kannada
kat kat_Geor Georgian
kaz kaz_Cyrl Kazakh
khm khm_Khmr Khmer
kin kin_Latn Kinyarwanda
kir kir_Cyrl Kyrgyz
kmr kmr_Latn Northern Kurdish (Kurmanji)
kor kor_Hang Korean
lao lao_Laoo Lao
lav lav_Latn Latvian
lit lit_Latn Lithuanian
ltz ltz_Latn Luxembourgish
mal mal_Mlym Malayalam
mar mar_Deva Marathi
mey mey_Arab Hassaniyya
mkd mkd_Cyrl Macedonian
mlg mlg_Latn Malagasy
mlt mlt_Latn Maltese
mon mon_Cyrl Mongolian
mri mri_Latn Maori
msa msa_Latn Malay
mya mya_Mymr Myanmar
nde nde_Latn North Ndebele
nep nep_Deva Nepali
nld nld_Latn Dutch
nno nno_Latn Norwegian Nynorsk
nob nob_Latn Norwegian Bokmal
nso nso_Latn Northern Sotho
nya nya_Latn Chichewa
orm orm_Latn Oromo
pan pan_Guru Panjabi
pol pol_Latn Polish
por por_Latn Portuguese
por-BR por_Latn Portuguese (Brazil)
prs prs_Arab Dari
pus pus_Arab Pushto
ron ron_Latn Romanian
rus rus_Cyrl Russian
shi shi_Arab Shilha
sin sin_Sinh Sinhala
slk slk_Latn Slovak
slv slv_Latn Slovenian
smo smo_Latn Samoan
sna-Latn sna_Latn Shona (Latin)
snd-Arab snd_Arab Sindhi (Arabic)
som som_Latn Somali
spa spa_Latn Spanish
spa-MX spa_Latn Spanish (Mexico)
sqi sqi_Latn Albanian
srp-Cyrl srp_Cyrl Serbian (Cyrillic)
srp-Latn srp_Latn Serbian (Latin)
ssw ssw_Latn Swati
swa swa_Latn Swahili
swe swe_Latn Swedish
tah tah_Latn Tahitian
tam tam_Taml Tamil
tat tat_Cyrl Tatar
tel tel_Telu Telugu
tgk-Cyrl tgk_Cyrl Tajik (Cyrillic)
tha tha_Thai Thai
tir tir_Ethi Tigrinya
ton ton_Latn Tonga (Tonga Islands)
tsn tsn_Latn Tswana
tuk tuk_Latn Turkmen
tur tur_Latn Turkish
uig uig_Arab Uighur
ukr ukr_Cyrl Ukrainian
urd urd_Arab Urdu
uzb uzb_Latn Uzbek
ven ven_Latn Venda
vie vie_Latn Vietnamese
wol wol_Latn Wolof
xho xho_Latn Xhosa
yor yor_Latn Yoruba
yue yue_Hant Cantonese
zho-CN zho_Hans Chinese (Simplified)
zho-TW zho_Hant Chinese (Traditional)
zul zul_Latn Zulu
""")

#: UD treebank language codes (ISO 639-1 in file names).
UD_LANGUAGES: dict[str, LanguageInfo] = _table("""
ar arb_Arab Arabic
de deu_Latn German
en eng_Latn English
fi fin_Latn Finnish
fr fra_Latn French
he heb_Hebr Hebrew
ko kor_Hang Korean
tr tur_Latn Turkish
zh zho_Hans Chinese
""")

#: ``dataset_build`` folder names (``dataset_build/data/<code>/``).
DATASET_BUILD_LANGUAGES: dict[str, LanguageInfo] = _table("""
ara arb_Arab Arabic (Modern Standard)
ben ben_Beng Bengali
bul bul_Cyrl Bulgarian
ces ces_Latn Czech
dan dan_Latn Danish
deu deu_Latn German
ell ell_Grek Greek
eng eng_Latn English
est est_Latn Estonian
fin fin_Latn Finnish
fra fra_Latn French
heb heb_Hebr Hebrew
hin hin_Deva Hindi
hrv hrv_Latn Croatian
hun hun_Latn Hungarian
ind ind_Latn Indonesian
ita ita_Latn Italian
jpn jpn_Jpan Japanese
kor kor_Hang Korean
lav lav_Latn Latvian
lit lit_Latn Lithuanian
nld nld_Latn Dutch
nor nob_Latn Norwegian (Bokmal)
pol pol_Latn Polish
por por_Latn Portuguese
ron ron_Latn Romanian
rus rus_Cyrl Russian
slk slk_Latn Slovak
slv slv_Latn Slovenian
spa spa_Latn Spanish
srp srp_Latn Serbian (Latin)
swa swa_Latn Swahili
swe swe_Latn Swedish
tha tha_Thai Thai
tur tur_Latn Turkish
ukr ukr_Cyrl Ukrainian
vie vie_Latn Vietnamese
zho zho_Hans Chinese (Simplified)
""")

_TABLES = {"ntrex128": NTREX_LANGUAGES, "ud": UD_LANGUAGES, "dataset_build": DATASET_BUILD_LANGUAGES}


def normalize_language(code: str, *, scheme: str = "ntrex128") -> str:
    """Return the ``<ISO 639-3>_<Script>`` code for a source language code.

    Parameters
    ----------
    code : str
        The source's code (``'heb'``, ``'zho-CN'``, ``'he'``, ``'ara'``), or an already normalized code.
    scheme : {'ntrex128', 'ud', 'dataset_build'}
        Which source's code table to use.

    Returns
    -------
    str
        For example ``'heb_Hebr'``.

    Raises
    ------
    UnknownNameError
        If ``code`` is in neither the table nor its normalized values; the message lists the valid codes.

    Notes
    -----
    Validated against: the script column is checked on the real NTREX-128 text by
    ``tests/qdmodels/corpora/test_languages.py`` (dominant Unicode script of each file); not otherwise
    independently validated.

    Examples
    --------
    >>> normalize_language("zho-TW")
    'zho_Hant'
    >>> normalize_language("he", scheme="ud")
    'heb_Hebr'
    """
    if scheme not in _TABLES:
        raise ValueError(f"`scheme` must be one of {sorted(_TABLES)}; got {scheme!r}." + did_you_mean(scheme, _TABLES))
    table = _TABLES[scheme]
    if code in table:
        return table[code].code
    normalized = {info.code for info in table.values()}
    if code in normalized:
        return code
    valid = sorted(table)
    raise UnknownNameError(
        f"`code` {code!r} is not a known {scheme} language code." + did_you_mean(code, valid + sorted(normalized))
        + f" Valid codes: {', '.join(valid)}."
    )


_SCRIPT_PREFIXES = {
    "LATIN": "Latn", "CYRILLIC": "Cyrl", "ARABIC": "Arab", "HEBREW": "Hebr", "DEVANAGARI": "Deva",
    "BENGALI": "Beng", "TIBETAN": "Tibt", "GEORGIAN": "Geor", "ARMENIAN": "Armn", "GREEK": "Grek",
    "ETHIOPIC": "Ethi", "THAI": "Thai", "LAO": "Laoo", "KHMER": "Khmr", "MYANMAR": "Mymr", "SINHALA": "Sinh",
    "TAMIL": "Taml", "TELUGU": "Telu", "KANNADA": "Knda", "MALAYALAM": "Mlym", "GUJARATI": "Gujr",
    "GURMUKHI": "Guru", "THAANA": "Thaa", "HANGUL": "Hang", "CJK": "Hani", "HIRAGANA": "Hira",
    "KATAKANA": "Kana", "TIFINAGH": "Tfng", "MONGOLIAN": "Mong", "ORIYA": "Orya",
}


def dominant_script(text: str) -> str | None:
    """Most frequent ISO 15924 script among the letters of ``text`` (by Unicode character name).

    Han, Hiragana and Katakana are reported separately (``'Hani'``, ``'Hira'``, ``'Kana'``); the caller maps
    ``Hans``/``Hant``/``Jpan`` to them. Returns None when ``text`` has no letters of a known script.
    """
    counts: Counter[str] = Counter()
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        first = name.split(" ", 1)[0]
        if first in _SCRIPT_PREFIXES:
            counts[_SCRIPT_PREFIXES[first]] += 1
    return counts.most_common(1)[0][0] if counts else None

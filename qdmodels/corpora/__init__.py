"""Real multilingual text and gold morphology: manifests, data directory, fetch/verify, typed loaders.

Pure data code: nothing here imports torch or transformers. See ``docs/corpora.md``.
"""

from qdmodels.corpora.align import align_boundaries, segmented_word
from qdmodels.corpora.datadir import (
    CorpusFileError,
    default_cache_dir,
    manifest_dir,
    resolve_data_dir,
)
from qdmodels.corpora.dataset_build import (
    CalibrationText,
    DatasetBuildCorpus,
    dataset_build_languages,
    load_dataset_build,
)
from qdmodels.corpora.fetch import FetchError, FetchReport, fetch_corpus
from qdmodels.corpora.languages import LanguageInfo, normalize_language
from qdmodels.corpora.manifest import (
    CorpusManifest,
    FileStatus,
    ManifestError,
    ManifestFile,
    get_manifest,
    list_manifests,
    load_manifest,
    sha256_file,
    verify_corpus,
)
from qdmodels.corpora.morphology import (
    GoldSegmentations,
    InflectionEntry,
    UnresolvedWord,
    detransliterate_turkish,
    load_morpho_challenge,
    load_morphynet,
    load_sigmorphon2022,
    load_unimorph_heb,
)
from qdmodels.corpora.normalize import normalization_steps, normalize_text
from qdmodels.corpora.ntrex import ParallelCorpus, load_ntrex, ntrex_languages
from qdmodels.corpora.splits import document_split
from qdmodels.corpora.types import ParallelItem, SegmentedWord, Sentence, Word
from qdmodels.corpora.user import (
    NO_DOCUMENT_ID_NOTE,
    CorpusFormatError,
    corpus_ids,
    load_corpus,
    resolve_language,
)
from qdmodels.corpora.ud import (
    ConllUFormatError,
    align_pud,
    load_conllu,
    parse_conllu,
    ud_treebanks,
)

__all__ = [
    "CalibrationText",
    "ConllUFormatError",
    "CorpusFormatError",
    "CorpusFileError",
    "CorpusManifest",
    "DatasetBuildCorpus",
    "FetchError",
    "FetchReport",
    "FileStatus",
    "NO_DOCUMENT_ID_NOTE",
    "GoldSegmentations",
    "InflectionEntry",
    "LanguageInfo",
    "ManifestError",
    "ManifestFile",
    "ParallelCorpus",
    "ParallelItem",
    "SegmentedWord",
    "Sentence",
    "UnresolvedWord",
    "Word",
    "align_boundaries",
    "align_pud",
    "corpus_ids",
    "dataset_build_languages",
    "default_cache_dir",
    "detransliterate_turkish",
    "document_split",
    "fetch_corpus",
    "get_manifest",
    "list_manifests",
    "load_conllu",
    "load_corpus",
    "load_dataset_build",
    "load_manifest",
    "load_morpho_challenge",
    "load_morphynet",
    "load_ntrex",
    "load_sigmorphon2022",
    "load_unimorph_heb",
    "manifest_dir",
    "normalization_steps",
    "normalize_language",
    "normalize_text",
    "ntrex_languages",
    "parse_conllu",
    "resolve_data_dir",
    "resolve_language",
    "segmented_word",
    "sha256_file",
    "ud_treebanks",
    "verify_corpus",
]

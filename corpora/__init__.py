"""Corpus manifests (``<corpus_id>/manifest.yaml``), shipped in the wheel as the data package ``qd_corpora``.

The folder stays at the repository root (``corpora/``); ``pyproject.toml`` maps it to the package name
``qd_corpora`` so that ``qdmodels.corpora.datadir.manifest_dir()`` finds the manifests in an installed ``qd``.
No code lives here.
"""

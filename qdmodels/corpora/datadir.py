"""Where corpus files live: the data directory and the manifest directory.

Data directory, first match wins:

1. an explicit argument (``data_dir=`` in Python, ``--data-dir`` on the command line);
2. the environment variable ``QD_DATA_DIR``;
3. the per-user cache ``$XDG_CACHE_HOME/qd/data`` (``~/.cache/qd/data`` when ``XDG_CACHE_HOME`` is unset).

The layout inside the data directory mirrors the shared data folder (``ntrex128/NTREX-128/...``,
``ud/UD_Hebrew-IAHLTwiki/...``), so ``QD_DATA_DIR=../shared/data`` works directly.

Manifest directory: ``QD_MANIFEST_DIR`` if set, else ``corpora/`` at the root of the checkout this file runs from,
else the installed data package ``qd_corpora`` (the repository's ``corpora/`` folder, shipped in the wheel).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

__all__ = ["CorpusFileError", "default_cache_dir", "manifest_dir", "resolve_data_dir", "safe_join"]


class CorpusFileError(FileNotFoundError):
    """A corpus file is missing, empty, or fails verification; the message names the file and how to fetch it."""


def default_cache_dir() -> Path:
    """Per-user cache default: ``$XDG_CACHE_HOME/qd/data`` or ``~/.cache/qd/data``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "qd" / "data"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data directory (argument, then ``QD_DATA_DIR``, then the per-user cache).

    Parameters
    ----------
    data_dir : path-like, optional
        Explicit directory; wins over the environment.

    Returns
    -------
    pathlib.Path
        Absolute path; it may not exist yet (``qd data fetch`` creates it).

    Raises
    ------
    TypeError
        If ``data_dir`` is not a path-like object.

    Notes
    -----
    Validated against: unit tests of the precedence order; not independently validated.

    Examples
    --------
    >>> resolve_data_dir("/tmp/qd-data").name
    'qd-data'
    """
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"`data_dir` must be a path; got {data_dir!r} of type {type(data_dir).__name__}.")
        return Path(data_dir).expanduser().resolve()
    env = os.environ.get("QD_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return default_cache_dir().resolve()


def manifest_dir() -> Path:
    """Directory holding ``<corpus_id>/manifest.yaml``, first match wins.

    1. the environment variable ``QD_MANIFEST_DIR``;
    2. ``corpora/`` of the source tree this module runs from (a checkout, with or without an editable install), so
       code and manifests always come from the same tree;
    3. the data package ``qd_corpora`` of an installed ``qd`` (the wheel ships the repository's ``corpora/`` folder
       under that name, see ``pyproject.toml``), located with :func:`importlib.resources.files`.

    When none exists, the checkout path of step 2 is returned and the caller reports it as missing.
    """
    env = os.environ.get("QD_MANIFEST_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = Path(__file__).resolve().parents[2]
    checkout = root / "corpora"
    if (root / "pyproject.toml").is_file() and (checkout / "__init__.py").is_file():
        return checkout
    try:
        from importlib.resources import files

        pkg = Path(str(files("qd_corpora")))
        if pkg.is_dir():
            return pkg.resolve()
    except (ImportError, TypeError, ValueError):  # not installed, or not a plain folder (e.g. inside a zip)
        pass
    return checkout


def check_relative_path(path: str, name: str = "path") -> str:
    """Reject paths that could escape a directory: absolute, drive letters, backslashes, ``..``, empty parts."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"`{name}` must be a non-empty relative path; got {path!r}.")
    p = PurePosixPath(path)
    if (
        p.is_absolute()
        or "\\" in path
        or (len(path) > 1 and path[1] == ":")
        or any(part in ("..", ".", "") for part in path.split("/"))
        or "\x00" in path
    ):
        raise ValueError(
            f"`{name}` must be a relative path inside the data directory without '..', '.', empty parts, "
            f"backslashes or a leading '/'; got {path!r}."
        )
    return path


def safe_join(root: Path, relpath: str) -> Path:
    """Join ``relpath`` to ``root`` and refuse any result outside ``root`` (also through symlinks)."""
    check_relative_path(relpath)
    root_r = root.resolve()
    target = (root_r / relpath).resolve()
    if target != root_r and root_r not in target.parents:
        raise ValueError(f"`path` {relpath!r} escapes the data directory {str(root_r)!r}.")
    return target

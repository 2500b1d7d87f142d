"""The sweep spec (YAML, pydantic-validated) and its expansion into jobs with content-addressed ids.

A :class:`SweepSpec` names models, a corpus (NTREX-128 from the data directory, or inline texts for tests and
examples), a split, languages, a sentence limit and the condition grid (quantization schemes x protection
plans x pruning x calibration sets, plus seeds). :func:`expand` turns it into :class:`Job` objects; a job's
``id`` is the sha256 of its canonical JSON content (sorted keys, no whitespace), so the same work always has
the same id, on any machine, and a rerun finds what is already done.

Job granularity
---------------
``kind='eval'``: one job per (model, language, condition). The full-precision baseline (``scheme='fp32'``,
``protect='none'``, ``prune='none'``) is **one job of its own** per (model, language, items): it is computed
exactly once per sweep, whatever the executor, and compressed-condition jobs do not recompute it (pairing
with the baseline happens at analysis time, :func:`qdstats.records.paired_frame`). Compressed jobs name
it in ``baseline_id``.

``kind='layer_sweep'``: one job per (model, language, scheme, seed) running
:func:`qdmodels.eval.sensitivity.sweep_layers` over every site group; the full-precision pass and the prefix cache
are built once inside the job and shared by all its site groups.

Examples
--------
>>> spec = SweepSpec(name="demo", models=["tiny:gpt2"], corpus="inline",
...                  texts={"eng_Latn": ["The fox."], "heb_Hebr": ["השועל."]}, schemes=["int4-g16-sym"])
>>> jobs = expand(spec)
>>> [(j.language, j.condition["scheme"]) for j in jobs]
[('eng_Latn', 'fp32'), ('eng_Latn', 'int4-g16-sym'), ('heb_Hebr', 'fp32'), ('heb_Hebr', 'int4-g16-sym')]
>>> len(jobs[0].id)
64
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qdstats.records import LANGUAGE_PATTERN

__all__ = ["Job", "JobKind", "ModelSpec", "SweepSpec", "canonical_json", "corpus_sha256", "expand", "is_user_corpus",
           "job_id", "load_spec"]

JobKind = Literal["eval", "layer_sweep"]
SPEC_VERSION = 1
_FP_CONDITION = {"scheme": "fp32", "protect": "none", "prune": "none"}


def canonical_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 characters kept, NaN rejected."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def job_id(content: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a job's content."""
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


class ModelSpec(BaseModel):
    """A model of the sweep: anything :func:`qdmodels.models.loading.load_model` accepts, or ``tiny:<family>``.

    A plain string in YAML is read as ``{name: <string>}``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Embedded name ('smollm2-135m'), .gguf file, local directory, HF id, or 'tiny:<family>'.")
    revision: str | None = Field(default=None, description="Hub revision (HF ids only).")
    dtype: Literal["float32", "bfloat16"] = Field(default="float32", description="Compute dtype of the loaded weights.")
    n_layers: int | None = Field(default=None, ge=1, description="Tiny models only: number of blocks (default 2).")
    seed: int | None = Field(default=None, description="Tiny models only: weight-initialization seed (default 0).")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if not self.name.strip():
            raise ValueError("`models[].name` must be a non-empty string.")
        if self.name.startswith("tiny:"):
            from qdmodels.models.tiny import FAMILIES

            fam = self.name.split(":", 1)[1]
            if fam not in FAMILIES:
                from qdstats.validation import did_you_mean

                raise ValueError(f"`models[].name` {self.name!r} names an unknown tiny family {fam!r}."
                                 + did_you_mean(fam, FAMILIES) + f" Allowed: {', '.join(FAMILIES)}.")
        elif self.n_layers is not None or self.seed is not None:
            raise ValueError(f"`n_layers`/`seed` apply only to tiny:<family> models; got them for {self.name!r}.")
        return self

    @property
    def label(self) -> str:
        return self.name


class Job(BaseModel):
    """One unit of work: a model, the items of one language, one condition; it produces records.

    Everything a worker needs is in the job (inline texts included), so it can run on another machine.
    ``id`` is :func:`job_id` of all other fields.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="sha256 of the canonical JSON of the other fields.")
    kind: JobKind = Field(description="'eval' or 'layer_sweep'.")
    model: ModelSpec = Field(description="The model.")
    corpus: str = Field(description="'ntrex128', 'inline', or the path of the user's corpus file or folder.")
    corpus_sha256: str | None = Field(default=None, description="sha256 of the user's corpus (CorpusRef.sha256).")
    split: str | None = Field(description="Corpus split (None for inline texts).")
    language: str = Field(description="Language of the job's items.")
    limit: int | None = Field(description="First N items of the split.")
    texts: tuple[str, ...] | None = Field(default=None, description="Inline texts (corpus='inline').")
    condition: dict[str, str] = Field(description="Canonical condition: scheme, protect, prune (+ calibration when used).")
    seed: int | None = Field(default=None, description="Bootstrap seed (layer_sweep).")
    params: dict[str, Any] = Field(default_factory=dict, description="Kind-specific parameters that change results.")
    baseline_id: str | None = Field(default=None, description="Id of the fp32 baseline job of the same items (eval).")

    @model_validator(mode="after")
    def _id_matches(self) -> Job:
        want = job_id(self.content())
        if self.id != want:
            raise ValueError(f"`id` {self.id[:12]}... does not match the job's content (sha256 {want[:12]}...); "
                             "the job was edited or made by another version of qd.")
        return self

    def content(self) -> dict[str, Any]:
        """The hashed content: every field but ``id``."""
        return self.model_dump(mode="json", exclude={"id"})

    @property
    def is_baseline(self) -> bool:
        return self.kind == "eval" and self.condition == _FP_CONDITION

    def describe(self) -> str:
        """One-line human label, e.g. ``'tiny:gpt2 heb_Hebr int4-g16-sym protect=none prune=none'``."""
        c = self.condition
        s = f"{self.model.name} {self.language} {c.get('scheme')} protect={c.get('protect')} prune={c.get('prune')}"
        if "calibration" in c:
            s += f" calib={c['calibration']}"
        if self.kind == "layer_sweep":
            s = f"layers[{s}] seed={self.seed}"
        return s


def _make_job(**fields: Any) -> Job:
    probe = Job.model_construct(id="", **{k: v for k, v in fields.items() if v is not None or k in ("split", "limit")})
    return Job(id=job_id(probe.content()), **fields)


class SweepSpec(BaseModel):
    """A sweep: models x languages x conditions (x seeds), expanded into resumable jobs.

    Parameters
    ----------
    name : str
        Label of the sweep.
    kind : {'eval', 'layer_sweep'}, default 'eval'
        ``'eval'``: per-sentence bits per byte under every condition (:func:`qdmodels.eval.scoring.evaluate`);
        ``'layer_sweep'``: one-site-group-at-a-time sensitivity (:func:`qdmodels.eval.sensitivity.sweep_layers`).
    models : list of str or ModelSpec
        At least one.
    corpus : str, default 'ntrex128'
        ``'ntrex128'``, ``'inline'`` (reads ``texts`` from the spec: tests, examples), or the path of your own
        corpus file or folder, read by :func:`qdmodels.corpora.load_corpus` (its sha256 goes into every job and
        every record's ``CorpusRef``; a resumed sweep refuses a changed file).
    split : str, optional
        NTREX document-level split (``'dev'`` by default); for a corpus file the rows whose ``split`` column equals it
        (default: every row). Ignored for inline texts.
    languages : list of str, optional
        Language codes (``'heb_Hebr'`` or NTREX codes for ntrex128). Default: the keys of ``texts``.
    limit : int, optional
        First N items per language.
    texts : dict language -> list of str, optional
        Inline texts (required for ``corpus='inline'``).
    schemes : list of str, default ()
        QuantScheme keys (``'int4-g128-sym'``) and/or ``'fp32'`` (no quantization, e.g. for prune-only conditions).
    protect : list of str, default ['none']
        ProtectionPlan keys (``'layers=0,1;comp=mlp'``).
    prune : list of str, default ['none']
        PruneSpec keys (``'2:4'``, ``'unstructured-0.5'``).
    calibration : list of str, default ['none']
        Calibration sets. Sweeps run the calibration-free methods (RTN, MSE clipping, magnitude pruning), so
        only ``'none'`` is accepted today; calibrated GPTQ (:mod:`qdmodels.compress.gptq`) is not wired in yet.
        The axis exists so that specs and job ids stay stable when it is (``'none'`` adds nothing to the
        condition).
    seeds : list of int, default [0]
        Bootstrap seeds (layer_sweep). Evaluation is deterministic, so ``kind='eval'`` takes one seed.
    batch_size : int, default 16
    max_batch_tokens : int or None, default 1024
        Token budget of every batch (:data:`qdmodels.eval.batching.DEFAULT_MAX_BATCH_TOKENS`); None: fixed batches.
    device : str, default 'cpu'
        Where jobs run: ``'cpu'``, ``'auto'`` (CUDA when present), ``'cuda'``, ``'cuda:N'``, ``'mps'``
        (:func:`qdmodels.runtime.resolve_device`). A resumed sweep refuses a device that resolves differently.
    compute_dtype : {'float32', 'bfloat16'}, default 'float32'
        ``'bfloat16'`` (CPU/GPU autocast) is a screening mode, allowed only for (model, scheme) pairs whose measured
        bf16 error is below the declared fraction of the CI half-width (:func:`qdmodels.jobs.bf16.check_bf16`).
    threads : int, default 1
        Torch intra-op threads inside every job, on every executor. CPU kernels split reductions by thread
        count, so the same job run with 1 and 2 threads differs in the last bits (about 5e-7 nats on the tiny
        models); pinning it makes records bit-identical across executors and worker counts. It is part of
        the job id. Use ``workers`` for parallelism; raise ``threads`` for one large model on many cores.
    granularity, layers, n_resamples, confidence_level, prefix_cache
        layer_sweep options, as in :func:`qdmodels.eval.sensitivity.sweep_layers`.
    data_dir : str, optional
        Data directory (not part of job ids).

    Raises
    ------
    pydantic.ValidationError
        Unknown keys, bad scheme/plan/prune keys, an empty grid, options that do not apply to ``kind``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec_version: Literal[1] = Field(default=SPEC_VERSION, description="Spec schema version.")
    name: str = Field(description="Label of the sweep.")
    kind: JobKind = Field(default="eval", description="'eval' or 'layer_sweep'.")
    models: tuple[ModelSpec, ...] = Field(min_length=1, description="Models to sweep.")
    corpus: str = Field(default="ntrex128", description="'ntrex128', 'inline' or the path of a corpus file/folder.")
    split: str | None = Field(default=None, description="NTREX split (default 'dev') or a corpus file's split column value.")
    languages: tuple[str, ...] = Field(default=(), description="Languages (default: keys of `texts`).")
    limit: int | None = Field(default=None, ge=1, description="First N items per language.")
    texts: dict[str, tuple[str, ...]] | None = Field(default=None, description="Inline texts per language.")
    schemes: tuple[str, ...] = Field(default=(), description="QuantScheme keys or 'fp32'.")
    protect: tuple[str, ...] = Field(default=("none",), min_length=1, description="ProtectionPlan keys.")
    prune: tuple[str, ...] = Field(default=("none",), min_length=1, description="PruneSpec keys or 'none'.")
    calibration: tuple[str, ...] = Field(default=("none",), min_length=1, description="Calibration sets ('none').")
    seeds: tuple[int, ...] = Field(default=(0,), min_length=1, description="Seeds.")
    batch_size: int = Field(default=16, ge=1, description="Items per forward pass.")
    max_batch_tokens: int | None = Field(default=1024, ge=1, description="Padded positions per batch (None: fixed batches).")
    device: str = Field(default="cpu", description="cpu, auto, cuda, cuda:N or mps.")
    compute_dtype: Literal["float32", "bfloat16"] = Field(default="float32", description="Compute dtype (bf16: validated screening only).")
    threads: int = Field(default=1, ge=1, description="Torch threads inside every job (pinned: results depend on it in the last bits).")
    granularity: Literal["layer", "component"] = Field(default="layer", description="layer_sweep site groups.")
    layers: tuple[int, ...] | None = Field(default=None, description="layer_sweep: blocks to sweep (default all).")
    n_resamples: int = Field(default=2000, ge=0, description="layer_sweep: cluster-bootstrap resamples per CI.")
    confidence_level: float = Field(default=0.95, gt=0, lt=1, description="layer_sweep: CI level.")
    prefix_cache: bool = Field(default=True, description="layer_sweep: restart forwards from cached fp states.")
    data_dir: str | None = Field(default=None, description="Data directory (not part of job ids).")

    @field_validator("schemes")
    @classmethod
    def _schemes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from qdmodels.compress.conditions import canonical_quant_key

        out = []
        for k in v:  # round-to-nearest or a backend key (gguf-, torchao-, quanto-, hqq-, bnb-), canonical form
            out.append("fp32" if k == "fp32" else canonical_quant_key(k))
        if len(set(out)) != len(out):
            raise ValueError(f"`schemes` has duplicates: {list(v)}.")
        return tuple(out)

    @field_validator("protect")
    @classmethod
    def _protect(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from qdmodels.compress.scheme import ProtectionPlan

        out = tuple(ProtectionPlan.parse(k).key for k in v)
        if len(set(out)) != len(out):
            raise ValueError(f"`protect` has duplicates: {list(v)}.")
        return out

    @field_validator("prune")
    @classmethod
    def _prune(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from qdmodels.compress.pruning import PruneSpec

        specs = [None if k == "none" else PruneSpec.parse(k) for k in v]
        calibrated = [p.key for p in specs if p is not None and p.needs_calibration]
        if calibrated:
            raise ValueError(f"`prune` {calibrated} needs calibration text, which sweep specs do not carry yet; "
                             "allowed: 'none', 'unstructured-<s>', 'unstructured-global-<s>', '<n>:<m>' (run "
                             "Wanda-style pruning with analyses/seed_claims/run_records.py or the library).")
        out = tuple("none" if p is None else p.key for p in specs)
        if len(set(out)) != len(out):
            raise ValueError(f"`prune` has duplicates: {list(v)}.")
        return out

    @field_validator("calibration")
    @classmethod
    def _calibration(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in v if c != "none"]
        if bad:
            raise ValueError(
                f"`calibration` must be ['none']; got {list(v)}. Sweeps run the calibration-free methods of "
                "qdmodels.compress.rtn/pruning (RTN, MSE clipping, magnitude pruning); calibrated GPTQ "
                "(qdmodels.compress.gptq) is not wired into sweeps yet: use `qd calibrate` for it."
            )
        return v

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        import re

        if self.corpus == "inline":
            if not self.texts:
                raise ValueError("`texts` is required for corpus='inline' (a dict language -> list of texts).")
            langs = self.languages or tuple(self.texts)
            missing = [lang for lang in langs if lang not in self.texts]
            if missing:
                raise ValueError(f"`languages` {missing} have no entry in `texts` (has {sorted(self.texts)}).")
            for lang in langs:
                if not re.match(LANGUAGE_PATTERN, lang):
                    raise ValueError(f"`languages` entry {lang!r} must look like 'heb_Hebr' for inline texts.")
                if not self.texts[lang]:
                    raise ValueError(f"`texts[{lang!r}]` is empty.")
            object.__setattr__(self, "languages", tuple(langs))
        elif self.corpus == "ntrex128":
            if self.texts is not None:
                raise ValueError("`texts` applies only to corpus='inline'.")
            if not self.languages:
                raise ValueError("`languages` must name at least one language for corpus='ntrex128'.")
            if self.split is None:
                object.__setattr__(self, "split", "dev")
            if self.split not in ("dev", "test", "all"):
                raise ValueError(f"`split` must be one of {{'dev', 'test', 'all'}} for corpus='ntrex128'; got {self.split!r}.")
            from qdmodels.corpora.ntrex import resolve_ntrex_language

            # normalized codes ('heb' -> 'heb_Hebr'), so that 'heb' and 'heb_Hebr' give the same job ids
            object.__setattr__(self, "languages", tuple(resolve_ntrex_language(x)[1] for x in self.languages))
        else:
            if self.texts is not None:
                raise ValueError("`texts` applies only to corpus='inline'.")
            if not Path(self.corpus).exists():
                raise ValueError(f"`corpus` must be 'ntrex128', 'inline' or an existing corpus file or folder; got "
                                 f"{self.corpus!r} (no such file).")
            if not self.languages:
                raise ValueError(f"`languages` must name at least one language of the corpus {self.corpus!r}.")
            from qdmodels.corpora.user import resolve_language

            object.__setattr__(self, "languages", tuple(resolve_language(x) for x in self.languages))
        from qdmodels.runtime import DEVICES

        kind, _, index = self.device.partition(":")
        if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
            raise ValueError(f"`device` must be one of {DEVICES} or 'cuda:N'; got {self.device!r}.")
        if len(set(self.languages)) != len(self.languages):
            raise ValueError(f"`languages` has duplicates: {list(self.languages)}.")
        if self.compute_dtype == "bfloat16":
            from qdmodels.jobs.bf16 import check_bf16

            for m in self.models:  # raises Bf16NotValidatedError (a ValueError) naming the model and the measurement
                check_bf16(m.name, [s for s in self.schemes])
        names = [m.model_dump_json() for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("`models` has duplicates.")
        if self.kind == "eval":
            if len(self.seeds) != 1:
                raise ValueError(f"`seeds` must hold one seed for kind='eval' (evaluation is deterministic); got {list(self.seeds)}.")
        else:
            if not self.schemes or "fp32" in self.schemes:
                raise ValueError(f"`schemes` must list quantization schemes (not 'fp32') for kind='layer_sweep'; got {list(self.schemes)}.")
            if self.compute_dtype != "float32":
                raise ValueError("`compute_dtype` must be 'float32' for kind='layer_sweep' (sweep_layers has no bf16 "
                                 f"screening mode); got {self.compute_dtype!r}.")
            if self.protect != ("none",) or self.prune != ("none",):
                raise ValueError("`protect` and `prune` must be ['none'] for kind='layer_sweep' (sweep_layers quantizes one site group at a time).")
        backend = [k for k in self.schemes if k != "fp32" and _is_backend_key(k)]
        if backend and self.kind == "layer_sweep":
            raise ValueError(f"`schemes` of kind='layer_sweep' must be round-to-nearest keys (intN-...); got {backend}.")
        if backend and self.prune != ("none",):
            raise ValueError(f"`prune` combines only with round-to-nearest schemes; {backend} are backend formats "
                             "(run them with prune: [none]).")
        return self

    def with_overrides(self, *, corpus: str | None = None, device: str | None = None,
                       compute_dtype: str | None = None) -> SweepSpec:
        """The same spec with another corpus, device or compute dtype (validated again; None keeps the spec's own).

        A new corpus drops the spec's ``split`` (the other corpus gets its own default) and its inline ``texts``
        (their languages stay). This is what ``qd sweep plan|run|status --corpus/--device/--dtype`` apply.

        Examples
        --------
        >>> s = SweepSpec(name="x", models=["tiny:llama"], corpus="inline", texts={"eng_Latn": ["a b"]},
        ...               schemes=["int8-ch-sym"])
        >>> s.with_overrides(device="auto").device
        'auto'
        """
        from qdstats.validation import check_option

        if compute_dtype is not None:
            check_option(compute_dtype, "compute_dtype", ("float32", "bfloat16"))
        upd = {k: v for k, v in {"corpus": corpus, "device": device, "compute_dtype": compute_dtype}.items()
               if v is not None}
        if not upd:
            return self
        data = self.model_dump(mode="json")
        if "corpus" in upd and upd["corpus"] != data["corpus"]:
            data["split"] = None
            data["texts"] = None
        return SweepSpec.model_validate({**data, **upd})

    def conditions(self) -> list[dict[str, str]]:
        """The compressed conditions of the grid (eval: without the fp32 baseline; no-op combinations dropped)."""
        out = []
        schemes = self.schemes or ("fp32",)
        for scheme, protect, prune, calib in itertools.product(schemes, self.protect, self.prune, self.calibration):
            if scheme == "fp32" and prune == "none":
                continue  # the baseline (protect has nothing to protect from)
            cond = {"scheme": scheme, "protect": protect, "prune": prune}
            if calib != "none":
                cond["calibration"] = calib
            out.append(cond)
        return out


def expand(spec: SweepSpec) -> list[Job]:
    """Expand a spec into jobs, in a deterministic order (model, language, baseline first, then the grid).

    Returns
    -------
    list of Job
        eval: per model and language, the fp32 baseline job then one job per compressed condition.
        layer_sweep: per model, language, scheme and seed, one job.

    Raises
    ------
    ValueError
        A spec whose grid is empty (eval with no compressed condition is allowed: baselines only).
    """
    if not isinstance(spec, SweepSpec):
        raise TypeError(f"`spec` must be a SweepSpec; got {type(spec).__name__}.")
    jobs: list[Job] = []
    sha = corpus_sha256(spec)
    run_params = {"max_batch_tokens": spec.max_batch_tokens, "device": spec.device, "compute_dtype": spec.compute_dtype}
    for model, lang in itertools.product(spec.models, spec.languages):
        common: dict[str, Any] = {
            "kind": spec.kind, "model": model, "corpus": spec.corpus, "split": None if spec.corpus == "inline" else spec.split,
            "language": lang, "limit": spec.limit, "texts": spec.texts[lang] if spec.texts else None,
            "corpus_sha256": sha,
        }
        if spec.kind == "eval":
            params = {"batch_size": spec.batch_size, "threads": spec.threads, **run_params}
            base = _make_job(**common, condition=dict(_FP_CONDITION), seed=None, params=params)
            jobs.append(base)
            for cond in spec.conditions():
                jobs.append(_make_job(**common, condition=cond, seed=None, params=params, baseline_id=base.id))
        else:
            params = {"batch_size": spec.batch_size, "threads": spec.threads, "device": spec.device,
                      "granularity": spec.granularity,
                      "layers": list(spec.layers) if spec.layers is not None else None,
                      "n_resamples": spec.n_resamples, "confidence_level": spec.confidence_level,
                      "prefix_cache": spec.prefix_cache}
            for cond, seed in itertools.product(spec.conditions(), spec.seeds):
                jobs.append(_make_job(**common, condition=cond, seed=seed, params=params))
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):  # pragma: no cover - guarded by the duplicate checks above
        raise ValueError("the spec expands into duplicate jobs.")
    return jobs


def _is_backend_key(key: str) -> bool:
    from qdmodels.compress.conditions import QUANT_BACKENDS

    return any(key.startswith(p) for p in QUANT_BACKENDS)


def is_user_corpus(corpus: str) -> bool:
    """True for a corpus given as a path (not 'ntrex128' or 'inline')."""
    return corpus not in ("ntrex128", "inline")


def corpus_sha256(spec: SweepSpec) -> str | None:
    """sha256 of the spec's own corpus file or folder (its ``CorpusRef.sha256``); None for ntrex128 and inline texts.

    Read through :func:`qdmodels.corpora.load_corpus`, so it is exactly the hash the records' ``CorpusRef`` carries.
    """
    if not is_user_corpus(spec.corpus):
        return None
    from qdmodels.corpora.user import load_corpus

    pc = load_corpus(spec.corpus, languages=list(spec.languages), split=spec.split, limit=1)
    refs = {it.corpus.sha256 for seq in pc.items.values() for it in seq if it.corpus is not None}
    if len(refs) != 1:  # pragma: no cover - one file has one hash
        raise ValueError(f"`corpus` {spec.corpus!r} gave items with {len(refs)} different sha256 values.")
    return refs.pop()


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a YAML sweep spec.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not UTF-8, malformed YAML or a tag that safe loading refuses (``!!python/object``: the message names the file,
        line and column), not a YAML mapping, or a spec that fails validation (the message names the field).
    """
    import yaml
    from pydantic import ValidationError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"`spec` file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"`spec` {p} is not UTF-8 text (byte {exc.start}).") from None
    except yaml.YAMLError as exc:  # malformed YAML, or a tag safe_load refuses (e.g. !!python/object)
        where = getattr(exc, "problem_mark", None)
        at = f":{where.line + 1}:{where.column + 1}" if where is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"`spec` {p}{at}: not a valid sweep spec YAML: {what}.") from None
    if not isinstance(data, dict):
        raise ValueError(f"`spec` {p} must be a YAML mapping; got {type(data).__name__}.")  # noqa: TRY004 - file content, not an argument type
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"invalid sweep spec {p}:\n{exc}") from None

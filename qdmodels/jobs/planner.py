"""Compute planner: expected time and memory of every job of a sweep on this machine, before running it.

:func:`plan` tokenizes the actual items of every (model, language) with the model's own tokenizer, measures
this machine's throughput with a short timed forward pass of the real model on those items (cached per
model + machine in ``<cache>/throughput.json``), measures how long applying each compression takes, and
multiplies out over the conditions. It warns (:class:`InfeasibleSweepWarning`) when the sweep is expected
to exceed a time budget or when the workers' memory exceeds the available RAM.

The estimate is a model of the cost, not a measurement of the sweep: see :func:`plan` Notes for the formulas.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qdmodels.jobs.spec import Job, SweepSpec, expand
from qdstats.validation import check_int

__all__ = ["InfeasibleSweepWarning", "JobEstimate", "SweepPlan", "Throughput", "available_memory_bytes",
           "machine_fingerprint", "measure_throughput", "plan"]

_RUNTIME_FALLBACK = 600 * 2**20


class InfeasibleSweepWarning(UserWarning):
    """The sweep is expected to exceed the time budget or the available memory of this machine."""


def default_cache_dir() -> Path:
    """``$QD_CACHE_DIR`` if set, else ``~/.cache/qd``."""
    env = os.environ.get("QD_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "qd"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_fingerprint() -> dict[str, Any]:
    """What identifies 'this machine' for cached throughput: host, CPU model and count, torch version."""
    import torch

    return {"host": platform.node(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__}


def available_memory_bytes() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _rss_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass(frozen=True)
class Throughput:
    """A timed forward pass of one model on this machine.

    ``tokens_per_second`` counts real (unpadded) tokens through forward + log-softmax scoring;
    ``apply_seconds`` maps a scheme or prune key to the seconds to apply and restore it on the whole model.
    """

    key: str
    tokens_per_second: float
    n_tokens: int
    seconds: float
    threads: int
    batch_size: int
    load_seconds: float | None
    loadavg: float | None
    measured_at: str
    apply_seconds: dict[str, float] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)


def _cache_key(model_ref: Any, threads: int, batch_size: int) -> str:
    payload = json.dumps({"model": model_ref.model_dump(mode="json", exclude={"note"}), "machine": machine_fingerprint(),
                          "threads": threads, "batch_size": batch_size}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def measure_throughput(
    lm: Any, items: Sequence[Any], *, batch_size: int = 16, threads: int | None = None, max_seconds: float = 5.0,
    apply_keys: Sequence[str] = (), cache_dir: str | os.PathLike[str] | None = None, refresh: bool = False,
    load_seconds: float | None = None,
) -> Throughput:
    """Tokens per second of ``lm`` on ``items`` (forward + scoring), cached per model + machine.

    Parameters
    ----------
    lm : LoadedModel
    items : sequence of ParallelItem
        Real items (the timing uses their length distribution); batches are timed until ``max_seconds``.
    batch_size : int, default 16
    threads : int, optional
        Torch threads during the timing (default: the current setting); part of the cache key.
    max_seconds : float, default 5.0
        Stop timing batches after this long (at least one batch is timed, after one warm-up batch).
    apply_keys : sequence of str
        Scheme keys (``'int4-g128-sym'``) and prune keys (``'2:4'``) whose apply + restore time to measure.
    cache_dir : path, optional
        Default :func:`default_cache_dir`. The file is ``throughput.json``.
    refresh : bool, default False
        Measure again even when cached.
    load_seconds : float, optional
        Model load time to store with the measurement.

    Returns
    -------
    Throughput

    Notes
    -----
    The machine's load at timing is recorded (``loadavg``): a number measured on a busy machine is pessimistic.
    Validated against: not independently validated (a timing); tests check the cache round trip and that
    missing apply times are added without re-timing the forward pass.
    """
    import torch

    from qdmodels.runtime import resolve_model

    batch_size = check_int(batch_size, "batch_size", minimum=1)
    model, tokenizer, ref = resolve_model(lm, None, None)
    prev_threads = torch.get_num_threads()
    threads = check_int(threads, "threads", minimum=1) if threads is not None else prev_threads
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = path / "throughput.json"
    key = _cache_key(ref, threads, batch_size)
    cache = _read_cache(cache_file)
    hit = cache.get(key)
    if hit and not refresh and all(k in hit.get("apply_seconds", {}) for k in apply_keys):
        return Throughput(**hit)
    reuse = hit is not None and not refresh
    torch.set_num_threads(threads)
    try:
        if reuse:  # only apply times are missing: keep the timed throughput
            n_tok, secs, load1 = int(hit["n_tokens"]), float(hit["seconds"]), hit.get("loadavg")
            stamp = hit["measured_at"]
        else:
            n_tok, secs = _time_forward(model, tokenizer, items, batch_size, max_seconds)
            try:
                load1 = os.getloadavg()[0]
            except OSError:
                load1 = None
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        apply = dict(hit.get("apply_seconds", {})) if reuse else {}
        for k in apply_keys:
            if k in apply:
                continue
            from qdmodels.compress.pruning import compressed

            is_prune = k.startswith("unstructured") or ":" in k
            t1 = time.perf_counter()
            with compressed(model, scheme=None if is_prune else k, prune=k if is_prune else None):
                pass
            apply[k] = time.perf_counter() - t1
    finally:
        torch.set_num_threads(prev_threads)
    tp = Throughput(key=key, tokens_per_second=n_tok / secs, n_tokens=n_tok, seconds=secs, threads=threads,
                    batch_size=batch_size, load_seconds=load_seconds if load_seconds is not None else (hit or {}).get("load_seconds"),
                    loadavg=load1, measured_at=stamp, apply_seconds=apply,
                    machine=machine_fingerprint())
    cache = _read_cache(cache_file)  # re-read: another process may have written meanwhile
    cache[key] = asdict(tp)
    from qdstats.records import atomic_write_text

    atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return tp


def _time_forward(model: Any, tokenizer: Any, items: Sequence[Any], batch_size: int, max_seconds: float) -> tuple[int, float]:
    import torch

    from qdmodels.eval.batching import batch_logprobs, make_batches
    from qdmodels.eval.encoding import encode_items
    from qdmodels.runtime import context_token

    enc = encode_items(model, tokenizer, list(items))
    ctx_id, _ = context_token(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ctx_id
    batches = make_batches(enc, batch_size=batch_size, pad_id=pad)
    order = batches[len(batches) // 2:] + batches[: len(batches) // 2]  # start mid-length, not the longest
    with torch.inference_mode():
        def one(b: Any) -> None:
            batch_logprobs(model, b)

        one(order[0])  # warm-up
        # cycle through the batches: at least one full pass and 0.2 s, at most max_seconds
        n_tok, k, t0 = 0, 0, time.perf_counter()
        while True:
            b = order[k % len(order)]
            one(b)
            n_tok += sum(e.n_tokens for e in b.encoded)
            k += 1
            el = time.perf_counter() - t0
            if el >= max_seconds or (k >= len(order) and el >= min(0.2, max_seconds)):
                break
    return n_tok, time.perf_counter() - t0


@dataclass(frozen=True)
class JobEstimate:
    """Expected cost of one job."""

    job_id: str
    label: str
    model: str
    language: str
    n_items: int
    n_tokens: int
    seconds: float
    memory_bytes: int
    state: str = "pending"


@dataclass
class SweepPlan:
    """Result of :func:`plan`.

    Attributes
    ----------
    jobs : list of JobEstimate
    throughput : dict
        Model name -> :class:`Throughput`.
    workers : int
    total_seconds : float
        Sum of the jobs' expected seconds (one worker), done jobs excluded.
    wall_seconds : float
        Expected wall time with ``workers`` workers: ``max(total / workers, longest job)`` plus one model load
        per worker and model.
    peak_memory_bytes : int
        ``workers`` x the largest per-job peak.
    available_memory_bytes : int or None
    budget_seconds : float or None
    runtime_bytes : int
        The runtime share of every job's memory (this process's RSS when planning started; it varies between
        calls with what the process holds).
    warnings : list of str
        Infeasibility warnings (also emitted as :class:`InfeasibleSweepWarning`).
    """

    jobs: list[JobEstimate]
    throughput: dict[str, Throughput]
    workers: int
    total_seconds: float
    wall_seconds: float
    peak_memory_bytes: int
    available_memory_bytes: int | None
    budget_seconds: float | None
    runtime_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return not self.warnings

    def render(self, *, max_rows: int = 40) -> str:
        """Human-readable table (rounding happens only here)."""
        from io import StringIO

        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=f"sweep plan: {len(self.jobs)} jobs", show_lines=False)
        for col in ("job", "state", "items", "tokens", "time", "peak mem"):
            t.add_column(col, justify="right" if col not in ("job", "state") else "left")
        for e in self.jobs[:max_rows]:
            t.add_row(escape(e.label), e.state, str(e.n_items), str(e.n_tokens), _fmt_s(e.seconds), _fmt_b(e.memory_bytes))
        if len(self.jobs) > max_rows:
            t.add_row(f"... {len(self.jobs) - max_rows} more", "", "", "", "", "")
        buf = StringIO()
        con = Console(file=buf, width=140, force_terminal=False, emoji=False, highlight=False)
        con.print(t)
        for name, tp in self.throughput.items():
            extra = f", load avg {tp.loadavg:.1f}" if tp.loadavg is not None else ""
            con.print(f"{escape(name)}: {tp.tokens_per_second:,.0f} tokens/s (batch {tp.batch_size}, {tp.threads} threads, "
                      f"timed {tp.n_tokens} tokens in {tp.seconds:.2f} s on {tp.measured_at}{extra})")
        avail = _fmt_b(self.available_memory_bytes) if self.available_memory_bytes is not None else "unknown"
        con.print(f"total: {_fmt_s(self.total_seconds)} of compute; expected wall {_fmt_s(self.wall_seconds)} with "
                  f"{self.workers} worker(s); peak memory {_fmt_b(self.peak_memory_bytes)} (available {avail})")
        for w in self.warnings:
            con.print(f"WARNING: {escape(w)}")
        return buf.getvalue()


def _fmt_s(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _fmt_b(b: int | None) -> str:
    if b is None:
        return "?"
    return f"{b / 2**20:.0f} MiB" if b < 2**30 else f"{b / 2**30:.2f} GiB"


def _model_geometry(model: Any) -> dict[str, int]:
    from qdmodels.models.blocks import decoder_layers

    cfg = model.config
    layers = decoder_layers(model)
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel() * p.element_size()
    per_layer = sum(p.numel() for p in layers[0].parameters()) if layers else 0
    vocab = int(getattr(cfg, "vocab_size", 0))
    hidden = int(getattr(cfg, "hidden_size", getattr(cfg, "n_embd", 0)))
    return {"weight_bytes": total, "n_layers": len(layers), "per_layer_params": per_layer, "vocab": vocab,
            "hidden": hidden, "block_bytes": sum(p.numel() * p.element_size() for lay in layers for p in lay.parameters())}


def plan(
    spec: SweepSpec, *, workers: int = 1, budget_seconds: float | None = None,
    memory_bytes: int | None = None, out: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None, refresh: bool = False, max_seconds: float = 5.0,
) -> SweepPlan:
    """Estimate time and memory of every job of ``spec`` on this machine.

    Parameters
    ----------
    spec : SweepSpec
    workers : int, default 1
        Workers the sweep will run with (wall time and total memory scale with it).
    budget_seconds : float, optional
        Warn when the expected wall time exceeds it.
    memory_bytes : int, optional
        Memory to plan against (default: ``MemAvailable`` of this machine).
    out : path, optional
        Sweep output directory: jobs already done there are listed as done and cost nothing.
    cache_dir : path, optional
        Where the throughput cache lives (default ``$QD_CACHE_DIR`` or ``~/.cache/qd``).
    refresh : bool, default False
        Re-measure throughput even when cached.
    max_seconds : float, default 5.0
        Timing budget of the throughput measurement per model.

    Returns
    -------
    SweepPlan

    Warns
    -----
    InfeasibleSweepWarning
        Expected wall time above ``budget_seconds``, or peak memory above the available memory.

    Notes
    -----
    Per (model, language), ``T`` = number of text tokens of the actual items under the model's tokenizer and
    ``r`` = measured tokens/s. An eval job costs ``T / r + a(condition)``, where ``a`` is the measured apply +
    restore time of the scheme plus that of the pruning. A layer_sweep job costs one full pass ``T / r`` plus,
    per site group starting at block ``i`` of ``L``, ``T / r * (h + (1 - h) (L - i) / L)`` (prefix caching
    skips blocks before ``i``; ``h`` is the LM head's share of the parameters, always recomputed) plus
    ``a(scheme) / n_groups``. Memory per job: the runtime (this process's RSS before loading the model),
    weights, one backup copy of the compressed weights, logits of one batch
    (``3 * batch_size * max_len * vocab * 4`` bytes) and, for layer_sweep, the prefix cache
    (``L * padded_tokens * hidden * 4`` bytes). Tokenization and bootstrap time are not modelled.
    Validated against: not independently validated (a cost model); tests check token counts against
    :func:`~qdmodels.eval.encoding.encode_item` and that costs add up over conditions; the benchmark
    (``benchmarks/bench_sweep_executors.py``) reports planned vs measured seconds.
    """
    if not isinstance(spec, SweepSpec):
        raise TypeError(f"`spec` must be a SweepSpec; got {type(spec).__name__}.")
    workers = check_int(workers, "workers", minimum=1)
    if budget_seconds is not None and not (isinstance(budget_seconds, (int, float)) and budget_seconds > 0):
        raise ValueError(f"`budget_seconds` must be a positive number; got {budget_seconds!r}.")
    from qdmodels.eval.batching import make_batches
    from qdmodels.eval.encoding import encode_items
    from qdmodels.jobs.store import JobStore
    from qdmodels.jobs.worker import get_model, job_items
    from qdmodels.runtime import context_token

    threads = spec.threads
    jobs = expand(spec)
    store = JobStore(Path(out)) if out is not None else None
    runtime = _rss_bytes() or _RUNTIME_FALLBACK
    data_dir = spec.data_dir or os.environ.get("QD_DATA_DIR")
    by_model: dict[str, list[Job]] = {}
    for j in jobs:
        by_model.setdefault(j.model.model_dump_json(), []).append(j)
    estimates: list[JobEstimate] = []
    tps: dict[str, Throughput] = {}
    load_total = 0.0
    for mjobs in by_model.values():
        t0 = time.perf_counter()
        lm = get_model(mjobs[0].model, mjobs[0].params.get("device", "cpu"))
        load_s = time.perf_counter() - t0
        geo = _model_geometry(lm.model)
        ctx_id, _ = context_token(lm.tokenizer)
        pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else ctx_id
        per_lang: dict[str, dict[str, Any]] = {}
        all_items: list[Any] = []
        for j in mjobs:
            if j.language in per_lang:
                continue
            its = job_items(j, data_dir)
            enc = encode_items(lm.model, lm.tokenizer, its)
            bs = int(j.params["batch_size"])
            batches = make_batches(enc, batch_size=bs, pad_id=pad)
            per_lang[j.language] = {
                "n_items": len(its), "n_tokens": sum(e.n_tokens for e in enc),
                "max_len": max(len(e.input_ids) for e in enc),
                "padded": sum(int(b.input_ids.numel()) for b in batches),
            }
            all_items.extend(its)
        keys = sorted({k for j in mjobs for k in (j.condition["scheme"], j.condition["prune"]) if k not in ("fp32", "none")})
        tp = measure_throughput(lm, all_items, batch_size=spec.batch_size, threads=threads, max_seconds=max_seconds,
                                apply_keys=keys, cache_dir=cache_dir, refresh=refresh,
                                load_seconds=load_s if load_s > 0.5 else None)
        tps[mjobs[0].model.name] = tp
        load_total += tp.load_seconds or load_s
        head = geo["vocab"] * geo["hidden"]
        h = head / (head + geo["per_layer_params"] * max(geo["n_layers"], 1))
        for j in mjobs:
            info = per_lang[j.language]
            full = info["n_tokens"] / tp.tokens_per_second
            apply = sum(tp.apply_seconds.get(k, 0.0) for k in (j.condition["scheme"], j.condition["prune"]))
            logits_b = 3 * int(j.params["batch_size"]) * info["max_len"] * geo["vocab"] * 4
            mem = runtime + geo["weight_bytes"] + (geo["block_bytes"] if apply else 0) + logits_b
            if j.kind == "eval":
                secs = full + apply
            else:
                from qdmodels.eval.sensitivity import site_groups

                groups = site_groups(lm.model, granularity=j.params["granularity"], layers=j.params["layers"])
                L = max(geo["n_layers"], 1)
                frac = sum(h + (1 - h) * (L - g.first_layer) / L for g in groups) if j.params["prefix_cache"] else len(groups)
                secs = full * (1 + frac) + apply
                if j.params["prefix_cache"]:
                    mem += L * info["padded"] * geo["hidden"] * 4
            state = store.state(j.id) if store is not None else "pending"
            estimates.append(JobEstimate(job_id=j.id, label=j.describe(), model=j.model.name, language=j.language,
                                         n_items=info["n_items"], n_tokens=info["n_tokens"], seconds=secs,
                                         memory_bytes=int(mem), state=state))
    pending = [e for e in estimates if e.state != "done"]
    total = float(sum(e.seconds for e in pending))
    longest = max((e.seconds for e in pending), default=0.0)
    wall = (max(total / workers, longest) + load_total) if pending else 0.0
    peak = workers * max((e.memory_bytes for e in estimates), default=0)
    avail = memory_bytes if memory_bytes is not None else available_memory_bytes()
    msgs: list[str] = []
    if budget_seconds is not None and wall > budget_seconds:
        msgs.append(f"expected wall time {_fmt_s(wall)} exceeds the budget of {_fmt_s(float(budget_seconds))}; "
                    "reduce `limit`, languages or conditions, or add workers/machines.")
    if avail is not None and peak > avail:
        msgs.append(f"expected peak memory {_fmt_b(peak)} ({workers} worker(s)) exceeds the available {_fmt_b(avail)}; "
                    "use fewer workers or a smaller `batch_size`.")
    for m in msgs:
        warnings.warn(m, InfeasibleSweepWarning, stacklevel=2)
    return SweepPlan(jobs=estimates, throughput=tps, workers=workers, total_seconds=total, wall_seconds=wall,
                     peak_memory_bytes=peak, available_memory_bytes=avail, budget_seconds=budget_seconds,
                     runtime_bytes=int(runtime), warnings=msgs)

"""What to compress and what to keep: quantization schemes, protection plans and site selection.

A :class:`QuantScheme` says *how* to quantize (bits, symmetric or not, tensor/channel/group granularity, optional
MSE clipping; its key, e.g. ``'int4-g64-sym'``, is what records and the CLI carry); a :class:`ProtectionPlan`
says *what stays in full precision*; :func:`resolve_sites` turns a plan (or explicit site names) into the
weight tensors a compressor touches. Every compressor (:mod:`~qdmodels.compress.rtn`,
:mod:`~qdmodels.compress.gptq`, :mod:`~qdmodels.compress.pruning`) takes these.

Examples
--------
>>> from qdmodels.compress.scheme import QuantScheme
>>> QuantScheme.parse("int4-g64-sym").bits
4
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qdmodels.models.sites import SiteMap
from qdstats.validation import check_option

__all__ = [
    "CLIP_GRID", "Granularity", "ProtectionPlan", "QuantScheme", "TiedWeightError", "resolve_sites",
    "unique_param_count",
]

Granularity = Literal["tensor", "channel", "group"]
#: Shrink factors searched by ``clip='mse'`` (1.0 down to 0.3 in steps of 0.05).
CLIP_GRID: tuple[float, ...] = tuple(round(1.0 - 0.05 * k, 2) for k in range(15))
_KEY_RE = re.compile(r"^int(?P<bits>[2-8])-(?P<gran>t|ch|g(?P<gs>\d+))-(?P<sym>sym|asym)(?P<rest>(-[a-z0-9]+)*)$")


class TiedWeightError(ValueError):
    """A selection quantizes/prunes one site of a tied group but not the others."""


class QuantScheme(BaseModel):
    """How to fake-quantize a weight tensor.

    Parameters
    ----------
    bits : int
        2 to 8.
    symmetric : bool, default True
    granularity : {'tensor', 'channel', 'group'}, default 'group'
        One scale per tensor, per output channel (row of ``out x in``), or per group of ``group_size``
        consecutive input weights of a row.
    group_size : int, optional
        Required (>= 2) for ``'group'``; must be None otherwise. Default 128 for ``'group'``.
    clip : {'none', 'mse'}, default 'none'
        ``'mse'`` searches a shrink factor per group over :data:`CLIP_GRID` (15 values, 1.00 to 0.30).
    rounding : {'rtn'}, default 'rtn'
        Round-to-nearest (half to even).
    ragged : {'error', 'last_group_smaller'}, default 'error'
        What to do when ``group_size`` does not divide a row: raise, or let the last group of each row be
        smaller.
    scale_bits : int, default 16
        Storage bits of each scale and each zero point/min (for the true bits-per-weight accounting).
    full_range : bool, default False
        Symmetric only. False: ``max|w|`` maps to code ``2^(b-1) - 1`` (15 levels used at 4 bits). True: the
        grid of the reference GPTQ implementation (``--sym``: ``maxq = 2^b - 1``, zero point ``2^(b-1)``):
        ``s = 2 max|w| / (2^b - 1)`` and codes ``-2^(b-1) .. 2^(b-1) - 1``, all 16 levels at 4 bits (key suffix
        ``-full``). Same storage cost (the zero point is implicit).

    Examples
    --------
    >>> QuantScheme(bits=4, group_size=128).key
    'int4-g128-sym'
    >>> QuantScheme.parse("int3-ch-asym-mse").granularity
    'channel'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bits: int = Field(ge=2, le=8, description="Bits per weight code (2..8).")
    symmetric: bool = Field(default=True, description="Symmetric grid around zero (no zero point).")
    granularity: Granularity = Field(default="group", description="Scale granularity.")
    group_size: int | None = Field(default=None, description="Group size along the input dimension (granularity='group').")
    clip: Literal["none", "mse"] = Field(default="none", description="Clipping search.")
    rounding: Literal["rtn"] = Field(default="rtn", description="Rounding rule.")
    ragged: Literal["error", "last_group_smaller"] = Field(default="error", description="Groups not dividing a row.")
    scale_bits: int = Field(default=16, ge=1, le=32, description="Bits to store each scale / zero point.")
    full_range: bool = Field(default=False, description="Symmetric grid using all 2^bits codes (the reference GPTQ's).")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if data.get("granularity", "group") == "group" and data.get("group_size") is None:
                data["group_size"] = 128
            if isinstance(data.get("bits"), bool):
                raise ValueError(f"`bits` must be an integer in 2..8; got {data['bits']!r}.")
        return data

    @model_validator(mode="after")
    def _check(self) -> QuantScheme:
        if self.full_range and not self.symmetric:
            raise ValueError("`full_range` applies to symmetric grids only (an asymmetric grid already uses all "
                             "2**bits codes); got symmetric=False, full_range=True.")
        if self.granularity == "group":
            if self.group_size is None or self.group_size < 2:
                raise ValueError(f"`group_size` must be an integer >= 2 for granularity='group'; got {self.group_size!r}.")
        elif self.group_size is not None:
            raise ValueError(
                f"`group_size` must be None for granularity={self.granularity!r}; got {self.group_size!r}."
            )
        return self

    @property
    def key(self) -> str:
        """Short stable name, e.g. ``'int4-g128-sym'``, ``'int3-ch-asym-mse'``; inverse of :meth:`parse`."""
        gran = {"tensor": "t", "channel": "ch"}.get(self.granularity, f"g{self.group_size}")
        parts = [f"int{self.bits}", gran, "sym" if self.symmetric else "asym"]
        if self.full_range:
            parts.append("full")
        if self.clip == "mse":
            parts.append("mse")
        if self.ragged == "last_group_smaller":
            parts.append("ragged")
        if self.scale_bits != 16:
            parts.append(f"s{self.scale_bits}")
        return "-".join(parts)

    @classmethod
    def parse(cls, key: str) -> QuantScheme:
        """Build a scheme from its :attr:`key` (``'int4-g128-sym'``, ``'int8-ch-asym'``, ``'int3-t-sym-mse'``).

        Raises
        ------
        ValueError
            A key that does not follow ``int<bits>-<t|ch|g<N>>-<sym|asym>[-full][-mse][-ragged][-s<bits>]``.
        """
        m = _KEY_RE.match(str(key).strip().lower())
        if not m:
            raise ValueError(
                f"`key` must look like 'int4-g128-sym' (int<2..8>-<t|ch|g<N>>-<sym|asym>[-full][-mse][-ragged][-s<bits>]); got {key!r}."
            )
        gran = m["gran"]
        kw: dict[str, Any] = {"bits": int(m["bits"]), "symmetric": m["sym"] == "sym"}
        if gran == "t":
            kw["granularity"] = "tensor"
        elif gran == "ch":
            kw["granularity"] = "channel"
        else:
            kw.update(granularity="group", group_size=int(m["gs"]))
        for extra in [e for e in m["rest"].split("-") if e]:
            if extra == "full":
                kw["full_range"] = True
            elif extra == "mse":
                kw["clip"] = "mse"
            elif extra == "ragged":
                kw["ragged"] = "last_group_smaller"
            elif re.fullmatch(r"s\d+", extra):
                kw["scale_bits"] = int(extra[1:])
            else:
                raise ValueError(f"`key` {key!r} has an unknown suffix {extra!r}; allowed: 'full', 'mse', 'ragged', 's<bits>'.")
        return cls(**kw)

    def __str__(self) -> str:
        return self.key


class ProtectionPlan(BaseModel):
    """What stays in full precision when a model is quantized or pruned.

    Parameters
    ----------
    layers : tuple of int, default ()
        Blocks kept entirely in full precision.
    components : tuple of {'attention', 'mlp'}, default ()
        Components kept in full precision in every block.
    sites : tuple of str, default ()
        Further canonical site names or dotted prefixes kept in full precision.
    keep_embeddings, keep_lm_head, keep_norms, keep_biases : bool, default True
        Keep these tensor classes in full precision (the practical weight-only regime). For a tied model,
        quantizing ``lm_head`` means quantizing the shared embedding too, so both flags must be False.

    Examples
    --------
    >>> ProtectionPlan().key
    'none'
    >>> ProtectionPlan(layers=(0, 11), components=("mlp",)).key
    'layers=0,11;comp=mlp'
    >>> ProtectionPlan.parse("layers=0,11;comp=mlp") == ProtectionPlan(layers=(0, 11), components=("mlp",))
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    layers: tuple[int, ...] = Field(default=(), description="Blocks kept in full precision.")
    components: tuple[Literal["attention", "mlp"], ...] = Field(default=(), description="Components kept in every block.")
    sites: tuple[str, ...] = Field(default=(), description="Site names or prefixes kept in full precision.")
    keep_embeddings: bool = Field(default=True, description="Keep token/position embeddings in full precision.")
    keep_lm_head: bool = Field(default=True, description="Keep the output head in full precision.")
    keep_norms: bool = Field(default=True, description="Keep norm gains/biases in full precision.")
    keep_biases: bool = Field(default=True, description="Keep biases in full precision.")

    @model_validator(mode="after")
    def _norm(self) -> ProtectionPlan:
        for i in self.layers:
            if i < 0:
                raise ValueError(f"`layers` must hold non-negative block indices; got {i}.")
        object.__setattr__(self, "layers", tuple(sorted(set(self.layers))))
        object.__setattr__(self, "components", tuple(sorted(set(self.components))))
        object.__setattr__(self, "sites", tuple(sorted(set(self.sites))))
        return self

    @property
    def key(self) -> str:
        """``'none'`` for the default plan, else ``';'``-joined parts such as ``'layers=0,11;comp=mlp'``."""
        parts = []
        if self.layers:
            parts.append("layers=" + ",".join(str(i) for i in self.layers))
        if self.components:
            parts.append("comp=" + ",".join(self.components))
        if self.sites:
            parts.append("sites=" + ",".join(self.sites))
        released = [n for n, keep in (("embed", self.keep_embeddings), ("head", self.keep_lm_head),
                                      ("norms", self.keep_norms), ("biases", self.keep_biases)) if not keep]
        if released:
            parts.append("quantize=" + ",".join(released))
        return ";".join(parts) if parts else "none"

    @classmethod
    def parse(cls, key: str) -> ProtectionPlan:
        """Inverse of :attr:`key`. Raises ``ValueError`` naming the bad part."""
        key = str(key).strip()
        if key in ("", "none"):
            return cls()
        kw: dict[str, Any] = {}
        for part in key.split(";"):
            name, sep, val = part.partition("=")
            items = [v for v in val.split(",") if v]
            if not sep or not items:
                raise ValueError(f"`key` part {part!r} must look like 'name=v1,v2'; got {key!r}.")
            if name == "layers":
                try:
                    kw["layers"] = tuple(int(v) for v in items)
                except ValueError:
                    raise ValueError(f"`key` part {part!r}: layers must be integers.") from None
            elif name == "comp":
                kw["components"] = tuple(check_option(v, "components", ("attention", "mlp")) for v in items)
            elif name == "sites":
                kw["sites"] = tuple(items)
            elif name == "quantize":
                flags = {"embed": "keep_embeddings", "head": "keep_lm_head", "norms": "keep_norms", "biases": "keep_biases"}
                for v in items:
                    kw[flags[check_option(v, "quantize", tuple(flags))]] = False
            else:
                raise ValueError(
                    f"`key` part {part!r} has unknown name {name!r}; allowed: 'layers', 'comp', 'sites', 'quantize'."
                )
        return cls(**kw)

    def resolve(self, smap: SiteMap) -> list[str]:
        """Sites this plan lets be compressed, in model order (tie conflicts are checked by the caller)."""
        for i in self.layers:
            if i >= smap.n_layers:
                raise ValueError(f"`layers` holds {i}, but the model has {smap.n_layers} blocks.")
        protected = set(smap.match(list(self.sites))) if self.sites else set()
        out = []
        comp_map = {"attention": "attention", "mlp": "mlp"}
        for name, s in smap.sites.items():
            if name in protected:
                continue
            if s.is_bias and self.keep_biases:
                continue
            if s.component == "norm" and self.keep_norms:
                continue
            if s.component == "embedding" and self.keep_embeddings:
                continue
            if s.component == "lm_head" and self.keep_lm_head:
                continue
            if s.layer is not None and s.layer in self.layers:
                continue
            if s.component in {comp_map[c] for c in self.components}:
                continue
            out.append(name)
        return out



# ---- site selection ------------------------------------------------------------------------------------


def resolve_sites(smap: SiteMap, *, plan: ProtectionPlan | None = None, sites: str | Sequence[str] | None = None,
                  what: str = "quantize") -> list[str]:
    """The site names to compress: ``sites`` (names, prefixes or globs) filtered by ``plan``.

    With neither, the default :class:`ProtectionPlan` applies (attention and MLP projection weights of
    every block). With only ``sites``: exact site names are taken as given (``'lm_head'``,
    ``'layers.0.norm.input'``), while prefixes and globs are filtered by the default plan, so ``'layers.3'``
    means the projection weights of block 3. With both, ``plan`` filters every match.
    A selection that splits a tied group raises :class:`TiedWeightError`; an empty one raises ``ValueError``.
    """
    if plan is not None and not isinstance(plan, ProtectionPlan):
        raise TypeError(f"`plan` must be a ProtectionPlan or None; got {type(plan).__name__}.")
    if sites is None:
        chosen = (plan or ProtectionPlan()).resolve(smap)
    else:
        pats = [sites] if isinstance(sites, str) else list(sites)
        chosen = smap.match(pats)
        allowed = set((plan or ProtectionPlan()).resolve(smap))
        exact = set(pats) & set(smap.sites) if plan is None else set()
        chosen = [n for n in chosen if n in allowed or n in exact]
    chosen_set = set(chosen)
    for group in smap.tied_groups:
        inside = [n for n in group if n in chosen_set]
        if inside and len(inside) != len(group):
            outside = [n for n in group if n not in chosen_set]
            raise TiedWeightError(
                f"`sites`: {inside} share one tensor with {outside} (tied weights); to {what} it you must select the "
                f"whole group {list(group)} explicitly (e.g. ProtectionPlan(keep_embeddings=False, keep_lm_head=False)), "
                "or keep all of it in full precision."
            )
    if not chosen:
        raise ValueError(f"nothing to {what}: the `plan`/`sites` selection is empty for this {smap.family} model.")
    return chosen



def unique_param_count(smap: SiteMap) -> int:
    """Parameters of all sites, tied tensors counted once."""
    seen: set[int] = set()
    total = 0
    for s in smap.sites.values():
        ptr = s.param.data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += s.numel
    return total


"""Canonical names for the weight tensors ("sites") of a causal LM, across architecture families.

Every probe, quantizer and record in ``qd`` names a tensor by its **site**, not by the family-specific
module path, so that ``layers.3.mlp.down_proj`` means the same thing in GPT-2, Llama, Gemma-3, OPT, BLOOM,
GPT-NeoX/Pythia and Qwen2.

Canonical names
---------------
=====================================  ==========================================================
``embed_tokens``                        token embedding table
``embed_positions``                     learned position embeddings (GPT-2, OPT)
``embed_norm``                          LayerNorm right after the embeddings (BLOOM)
``embed_proj_in`` / ``proj_out``        OPT's projections when ``word_embed_proj_dim != hidden_size``
``layers.{i}.attn.{q,k,v}_proj``        separate query/key/value projections
``layers.{i}.attn.qkv_proj``            fused query/key/value (GPT-2 ``c_attn``; BLOOM/NeoX ``query_key_value``)
``layers.{i}.attn.o_proj``              attention output projection
``layers.{i}.mlp.{gate,up,down}_proj``  MLP projections (``up`` = GPT-2 ``c_fc``, OPT ``fc1``, BLOOM/NeoX ``dense_h_to_4h``)
``layers.{i}.norm.{input, post_attention, pre_feedforward, post_feedforward, q, k}``  norms in a block
``final_norm``                          the norm before the output head
``lm_head``                             output embedding / unembedding
``<site>.bias``                         the bias of a site that has one
=====================================  ==========================================================

The ``norm.post_attention`` site is the norm that *follows* the attention residual in the module order of
the family (GPT-2 ``ln_2``, OPT ``final_layer_norm``, Llama ``post_attention_layernorm``), i.e. the
pre-MLP norm in pre-norm models; Gemma-3 additionally has ``pre_feedforward``/``post_feedforward`` norms.

Fused QKV layouts differ: GPT-2 concatenates ``[q | k | v]`` along the output dimension, BLOOM and NeoX
interleave them per head (``[head, (q,k,v), head_dim]``). Per-output-channel and per-group quantization do not
depend on this order; anything that splits q/k/v must use ``Site.fused``.

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> sm = site_map(tiny_model("gpt2").model)
>>> sm.sites["layers.0.attn.qkv_proj"].weight_layout
'in_out'
>>> sm.tied_groups
(('embed_tokens', 'lm_head'),)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch

from qdmodels.runtime import unwrap_model
from qdstats.validation import UnknownNameError, check_option, did_you_mean

__all__ = ["SUPPORTED_FAMILIES", "Component", "Site", "SiteMap", "WeightLayout", "site_map"]

Component = Literal["embedding", "attention", "mlp", "norm", "lm_head"]
WeightLayout = Literal["out_in", "in_out"]
COMPONENTS: tuple[str, ...] = get_args(Component)


@dataclass(frozen=True, eq=False)
class Site:
    """One parameter tensor under its canonical name.

    Attributes
    ----------
    name : str
        Canonical site name, e.g. ``'layers.3.mlp.down_proj'`` or ``'layers.3.mlp.down_proj.bias'``.
    module : torch.nn.Module
        The module that owns the parameter.
    path : str
        Dotted module path inside the model (``model.get_submodule(path) is module``).
    param_name : str
        ``'weight'`` or ``'bias'``.
    kind : str
        Canonical name without the ``layers.{i}.`` prefix and the ``.bias`` suffix, e.g. ``'mlp.down_proj'``.
    layer : int or None
        Block index, None outside the blocks.
    component : {'embedding', 'attention', 'mlp', 'norm', 'lm_head'}
    is_bias : bool
    weight_layout : {'out_in', 'in_out'} or None
        Axis order of a 2-D weight: ``'out_in'`` for ``nn.Linear`` and embeddings (rows are output
        channels / tokens), ``'in_out'`` for GPT-2's ``Conv1D``; None for 1-D tensors.
    fused : tuple of str or None
        For fused projections, the parts in the output dimension (``('q', 'k', 'v')``).
    """

    name: str
    module: torch.nn.Module
    path: str
    param_name: str
    kind: str
    layer: int | None
    component: Component
    is_bias: bool
    weight_layout: WeightLayout | None
    fused: tuple[str, ...] | None = None

    @property
    def param(self) -> torch.nn.Parameter:
        """The parameter tensor itself."""
        return getattr(self.module, self.param_name)

    @property
    def param_path(self) -> str:
        """Dotted parameter path in the model (as in ``model.named_parameters()``)."""
        return f"{self.path}.{self.param_name}" if self.path else self.param_name

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.param.shape)

    @property
    def numel(self) -> int:
        return int(self.param.numel())

    @property
    def is_norm(self) -> bool:
        return self.component == "norm"

    def __repr__(self) -> str:
        return f"Site({self.name!r}, path={self.param_path!r}, shape={self.shape}, layout={self.weight_layout})"


# ---- family specs ---------------------------------------------------------------------------------------
# per-layer: canonical kind -> (relative module path, component, fused parts)
_LLAMA_LAYER = {
    "attn.q_proj": ("self_attn.q_proj", "attention", None),
    "attn.k_proj": ("self_attn.k_proj", "attention", None),
    "attn.v_proj": ("self_attn.v_proj", "attention", None),
    "attn.o_proj": ("self_attn.o_proj", "attention", None),
    "mlp.gate_proj": ("mlp.gate_proj", "mlp", None),
    "mlp.up_proj": ("mlp.up_proj", "mlp", None),
    "mlp.down_proj": ("mlp.down_proj", "mlp", None),
    "norm.input": ("input_layernorm", "norm", None),
    "norm.post_attention": ("post_attention_layernorm", "norm", None),
}
_GEMMA3_LAYER = {
    **_LLAMA_LAYER,
    "norm.pre_feedforward": ("pre_feedforward_layernorm", "norm", None),
    "norm.post_feedforward": ("post_feedforward_layernorm", "norm", None),
    "norm.q": ("self_attn.q_norm", "norm", None),
    "norm.k": ("self_attn.k_norm", "norm", None),
}
_FAMILIES: dict[str, dict[str, Any]] = {
    "gpt2": {
        "layers": "transformer.h",
        "globals": {"embed_tokens": ("transformer.wte", "embedding"), "embed_positions": ("transformer.wpe", "embedding"),
                    "final_norm": ("transformer.ln_f", "norm")},
        "layer": {
            "attn.qkv_proj": ("attn.c_attn", "attention", ("q", "k", "v")),
            "attn.o_proj": ("attn.c_proj", "attention", None),
            "mlp.up_proj": ("mlp.c_fc", "mlp", None),
            "mlp.down_proj": ("mlp.c_proj", "mlp", None),
            "norm.input": ("ln_1", "norm", None),
            "norm.post_attention": ("ln_2", "norm", None),
        },
    },
    "llama": {
        "layers": "model.layers",
        "globals": {"embed_tokens": ("model.embed_tokens", "embedding"), "final_norm": ("model.norm", "norm")},
        "layer": _LLAMA_LAYER,
    },
    "gemma3": {
        "layers": "model.layers",
        "globals": {"embed_tokens": ("model.embed_tokens", "embedding"), "final_norm": ("model.norm", "norm")},
        "layer": _GEMMA3_LAYER,
    },
    "opt": {
        "layers": "model.decoder.layers",
        "globals": {"embed_tokens": ("model.decoder.embed_tokens", "embedding"),
                    "embed_positions": ("model.decoder.embed_positions", "embedding"),
                    "embed_proj_in": ("model.decoder.project_in", "embedding"),
                    "final_norm": ("model.decoder.final_layer_norm", "norm"),
                    "proj_out": ("model.decoder.project_out", "lm_head")},
        "layer": {
            "attn.q_proj": ("self_attn.q_proj", "attention", None),
            "attn.k_proj": ("self_attn.k_proj", "attention", None),
            "attn.v_proj": ("self_attn.v_proj", "attention", None),
            "attn.o_proj": ("self_attn.out_proj", "attention", None),
            "mlp.up_proj": ("fc1", "mlp", None),
            "mlp.down_proj": ("fc2", "mlp", None),
            "norm.input": ("self_attn_layer_norm", "norm", None),
            "norm.post_attention": ("final_layer_norm", "norm", None),
        },
    },
    "bloom": {
        "layers": "transformer.h",
        "globals": {"embed_tokens": ("transformer.word_embeddings", "embedding"),
                    "embed_norm": ("transformer.word_embeddings_layernorm", "norm"),
                    "final_norm": ("transformer.ln_f", "norm")},
        "layer": {
            "attn.qkv_proj": ("self_attention.query_key_value", "attention", ("q", "k", "v")),
            "attn.o_proj": ("self_attention.dense", "attention", None),
            "mlp.up_proj": ("mlp.dense_h_to_4h", "mlp", None),
            "mlp.down_proj": ("mlp.dense_4h_to_h", "mlp", None),
            "norm.input": ("input_layernorm", "norm", None),
            "norm.post_attention": ("post_attention_layernorm", "norm", None),
        },
    },
    "gpt_neox": {
        "layers": "gpt_neox.layers",
        "globals": {"embed_tokens": ("gpt_neox.embed_in", "embedding"), "final_norm": ("gpt_neox.final_layer_norm", "norm")},
        "layer": {
            "attn.qkv_proj": ("attention.query_key_value", "attention", ("q", "k", "v")),
            "attn.o_proj": ("attention.dense", "attention", None),
            "mlp.up_proj": ("mlp.dense_h_to_4h", "mlp", None),
            "mlp.down_proj": ("mlp.dense_4h_to_h", "mlp", None),
            "norm.input": ("input_layernorm", "norm", None),
            "norm.post_attention": ("post_attention_layernorm", "norm", None),
        },
    },
}
_FAMILIES["qwen2"] = _FAMILIES["llama"]
# model_type -> family spec key (llama-like decoders share the Llama layout)
_MODEL_TYPES = {
    "gpt2": "gpt2", "llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "gemma3_like_qk",
    "gemma3_text": "gemma3", "gemma3": "gemma3", "opt": "opt", "bloom": "bloom", "gpt_neox": "gpt_neox",
}
_FAMILIES["gemma3_like_qk"] = {**_FAMILIES["llama"], "layer": {**_LLAMA_LAYER, "norm.q": ("self_attn.q_norm", "norm", None),
                                                               "norm.k": ("self_attn.k_norm", "norm", None)}}
_FAMILY_NAMES = {"gemma3_text": "gemma3", "gemma3": "gemma3"}
SUPPORTED_FAMILIES: tuple[str, ...] = ("gpt2", "llama", "gemma3", "opt", "bloom", "gpt_neox", "qwen2")


def _layout(module: torch.nn.Module, param: torch.Tensor) -> WeightLayout | None:
    if param.ndim != 2:
        return None
    if type(module).__name__ == "Conv1D":  # transformers.pytorch_utils.Conv1D: weight is [in, out]
        return "in_out"
    return "out_in"


@dataclass
class SiteMap:
    """All sites of a model under canonical names (see the module docstring).

    Attributes
    ----------
    family : str
        Canonical family (``'gpt2'``, ``'llama'``, ``'gemma3'``, ``'opt'``, ``'bloom'``, ``'gpt_neox'``, ``'qwen2'``).
    model_type : str
        ``config.model_type`` as transformers reports it.
    n_layers : int
    layers : list of torch.nn.Module
        Decoder blocks in order.
    final_norm : torch.nn.Module or None
    lm_head : torch.nn.Module
    sites : dict of str to Site
        In model order: global embeddings, then block by block, then final norm and lm_head.
    tied_groups : tuple of tuple of str
        Sites whose parameters share storage (detected by ``data_ptr``), e.g. ``(('embed_tokens', 'lm_head'),)``.
    """

    family: str
    model_type: str
    n_layers: int
    layers: list[torch.nn.Module]
    final_norm: torch.nn.Module | None
    lm_head: torch.nn.Module
    sites: dict[str, Site]
    tied_groups: tuple[tuple[str, ...], ...] = field(default=())

    def __contains__(self, name: object) -> bool:
        return name in self.sites

    def __getitem__(self, name: str) -> Site:
        return self.get(name)

    def __len__(self) -> int:
        return len(self.sites)

    @property
    def names(self) -> list[str]:
        return list(self.sites)

    def get(self, name: str) -> Site:
        """The site called ``name``; an :class:`UnknownNameError` with suggestions otherwise."""
        if name not in self.sites:
            raise UnknownNameError(
                f"`site` {name!r} is not a site of this {self.family} model ({len(self.sites)} sites, e.g. "
                f"{', '.join(list(self.sites)[:4])}, ...)." + did_you_mean(name, self.sites)
            )
        return self.sites[name]

    def distinct(self, names: Iterable[str]) -> Iterator[tuple[str, Site]]:
        """``(name, site)`` for each of ``names`` whose tensor was not yielded yet: a tied tensor is changed once."""
        seen: set[int] = set()
        for name in names:
            site = self.sites[name]
            ptr = site.param.data_ptr()
            if ptr not in seen:
                seen.add(ptr)
                yield name, site

    def tied_with(self, name: str) -> tuple[str, ...]:
        """Other sites that share ``name``'s tensor (empty when untied)."""
        for g in self.tied_groups:
            if name in g:
                return tuple(n for n in g if n != name)
        return ()

    def select(
        self,
        *,
        layers: Iterable[int] | None = None,
        components: Iterable[Component] | None = None,
        kinds: Iterable[str] | None = None,
        include_biases: bool = False,
        include_norms: bool = False,
        include_embeddings: bool = False,
        include_lm_head: bool = False,
    ) -> list[str]:
        """Names of the sites matching all the filters, in model order.

        Parameters
        ----------
        layers : iterable of int, optional
            Block indices (negative indices count from the end); sites outside blocks are excluded when given.
        components : iterable of {'embedding', 'attention', 'mlp', 'norm', 'lm_head'}, optional
        kinds : iterable of str, optional
            Canonical kinds such as ``'mlp.down_proj'`` or just their last part (``'down_proj'``, ``'qkv_proj'``).
        include_biases, include_norms, include_embeddings, include_lm_head : bool, default False
            By default only the attention and MLP projection weights are selected.

        Returns
        -------
        list of str

        Raises
        ------
        ValueError
            A layer index out of range or an unknown component.
        """
        layer_set = None
        if layers is not None:
            layer_set = set()
            for i in layers:
                if isinstance(i, bool) or not isinstance(i, int) or not -self.n_layers <= i < self.n_layers:
                    raise ValueError(f"`layers` must hold block indices in [0, {self.n_layers}); got {i!r}.")
                layer_set.add(i % self.n_layers)
        comp_set = None
        if components is not None:
            comp_set = {check_option(c, "components", COMPONENTS) for c in components}
        kind_set = set(kinds) if kinds is not None else None
        out = []
        for name, s in self.sites.items():
            if s.is_bias and not include_biases:
                continue
            if s.component == "norm" and not include_norms and not (comp_set and "norm" in comp_set):
                continue
            if s.component == "embedding" and not include_embeddings and not (comp_set and "embedding" in comp_set):
                continue
            if s.component == "lm_head" and not include_lm_head and not (comp_set and "lm_head" in comp_set):
                continue
            if layer_set is not None and s.layer not in layer_set:
                continue
            if comp_set is not None and s.component not in comp_set:
                continue
            if kind_set is not None and s.kind not in kind_set and s.kind.rsplit(".", 1)[-1] not in kind_set:
                continue
            out.append(name)
        return out

    def match(self, patterns: str | Sequence[str]) -> list[str]:
        """Sites matching dotted prefixes (``'layers.3'``, ``'layers.3.mlp'``) or globs (``'layers.*.attn.q_proj'``).

        An exact site name matches only that site (``'layers.0.mlp.down_proj'`` not its ``.bias``). Otherwise a
        prefix matches every site whose name continues it after a ``'.'``, so ``'layers.1'`` does not match
        ``'layers.10...'`` and ``'layers.3.mlp'`` matches the weights and biases of block 3's MLP. Raises
        :class:`UnknownNameError` when a pattern matches nothing.
        """
        if isinstance(patterns, str):
            patterns = [patterns]
        out: list[str] = []
        for pat in patterns:
            if any(ch in pat for ch in "*?["):
                hits = [n for n in self.sites if fnmatch.fnmatchcase(n, pat)]
            elif pat in self.sites:
                hits = [pat]  # an exact site name means that site only (not its '.bias')
            else:
                hits = [n for n in self.sites if n == pat or n.startswith(pat + ".")]
            if not hits:
                raise UnknownNameError(
                    f"`sites` pattern {pat!r} matches no site of this {self.family} model." + did_you_mean(pat, self.sites)
                )
            out.extend(h for h in hits if h not in out)
        order = {n: i for i, n in enumerate(self.sites)}
        return sorted(out, key=order.__getitem__)

    def groups_by_layer(self, names: Iterable[str] | None = None) -> dict[int | None, list[str]]:
        """Group site names by block index (None for sites outside blocks)."""
        res: dict[int | None, list[str]] = {}
        for n in names if names is not None else self.sites:
            res.setdefault(self.get(n).layer, []).append(n)
        return res


def _find_path(model: torch.nn.Module, target: torch.nn.Module) -> str:
    for n, m in model.named_modules(remove_duplicate=False):
        if m is target:
            return n
    raise ValueError("module not found in model")


def site_map(model: Any) -> SiteMap:
    """Build the :class:`SiteMap` of a causal LM.

    Parameters
    ----------
    model : torch.nn.Module or LoadedModel
        A transformers causal LM of a supported family.

    Returns
    -------
    SiteMap

    Raises
    ------
    TypeError
        ``model`` is not a module.
    ValueError
        Unsupported ``config.model_type`` (the message lists the supported ones), or a parameter of a block
        that no canonical site covers (so that nothing is silently left out of quantization).

    Notes
    -----
    Validated against: unit tests on tiny random configs of every family (``tests/qdmodels/models/test_sites.py``),
    checking that every parameter of the model is covered by exactly one site (tied tensors by one group).

    Examples
    --------
    >>> from qdmodels.models.tiny import tiny_model
    >>> sm = site_map(tiny_model("llama"))
    >>> sm.select(layers=[0], kinds=["down_proj"])
    ['layers.0.mlp.down_proj']
    """
    model = unwrap_model(model)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in _MODEL_TYPES:
        raise ValueError(
            f"`model` has config.model_type {model_type!r}; supported: {sorted(_MODEL_TYPES)}."
            + did_you_mean(str(model_type), _MODEL_TYPES)
        )
    spec_key = _MODEL_TYPES[model_type]
    spec = _FAMILIES[spec_key]
    family = _FAMILY_NAMES.get(model_type, model_type)
    layers = list(model.get_submodule(spec["layers"]))
    sites: dict[str, Site] = {}

    def add(name: str, path: str, component: str, layer: int | None, kind: str, fused: Any = None) -> None:
        try:
            mod = model.get_submodule(path)
        except AttributeError:
            return
        if mod is None:
            return
        for pname in ("weight", "bias"):
            p = getattr(mod, pname, None)
            if not isinstance(p, torch.nn.Parameter):
                continue
            is_bias = pname == "bias"
            sname = f"{name}.bias" if is_bias else name
            sites[sname] = Site(
                name=sname, module=mod, path=path, param_name=pname, kind=kind, layer=layer,
                component=component,  # type: ignore[arg-type]
                is_bias=is_bias, weight_layout=None if is_bias else _layout(mod, p),
                fused=fused,
            )

    globals_ = spec["globals"]
    head_globals = {k: v for k, v in globals_.items() if k in ("final_norm", "proj_out")}
    for k, (path, comp) in globals_.items():
        if k not in head_globals:
            add(k, path, comp, None, k)
    for i in range(len(layers)):
        for kind, (rel, comp, fused) in spec["layer"].items():
            add(f"layers.{i}.{kind}", f"{spec['layers']}.{i}.{rel}", comp, i, kind, fused)
    for k, (path, comp) in head_globals.items():
        add(k, path, comp, None, k)
    final_norm = sites["final_norm"].module if "final_norm" in sites else None
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"`model` ({model_type}) has no output embeddings (lm_head).")
    add("lm_head", _find_path(model, head), "lm_head", None, "lm_head")

    # coverage: every parameter is a site, so nothing is silently skipped by quantization or statistics
    covered = {s.param_path for s in sites.values()}
    by_ptr: dict[int, list[str]] = {}
    for s in sites.values():
        by_ptr.setdefault(s.param.data_ptr(), []).append(s.name)
    for pname, p in model.named_parameters(remove_duplicate=False):
        if pname not in covered and p.data_ptr() not in by_ptr:
            raise ValueError(
                f"parameter {pname!r} of this {model_type} model is not covered by any canonical site; "
                "the site map for this family needs updating."
            )
    tied = tuple(tuple(g) for g in by_ptr.values() if len(g) > 1)
    return SiteMap(family=family, model_type=model_type, n_layers=len(layers), layers=layers, final_norm=final_norm,
                   lm_head=head, sites=sites, tied_groups=tied)

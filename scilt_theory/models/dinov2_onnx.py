"""Convert the DINOv2 backbone of an ONNX export of a Hugging Face ``Dinov2Model`` into a timm ViT state dict.

An ONNX file made by torch's TorchScript exporter from a ``transformers`` ``Dinov2Model`` (on its own, or as a
submodule such as ``backbone`` of a larger model) keeps the module paths in its node names
(``/backbone/encoder/layer.3/mlp/fc1/MatMul``) and the Hugging Face names of biases, norms, layer-scale gammas,
the CLS token and the patch embedding. The Linear weights are anonymous ``onnx::MatMul_*`` initializers holding
Wᵀ, so each one is found through the MatMul node that consumes it, never by position, and cross-checked with
the bias that the Add after it adds. The position embedding may have been split by constant folding into its
CLS part and its patch grid; both layouts are read.

The graph resamples the position grid to the input size with an ONNX ``Resize`` (cubic, a = −0.75,
half-pixel, target ``sizes``, no antialiasing). That rule is checked here and recorded; the weights file says
so in its safetensors metadata (see :data:`scilt_theory.models.backbone.POS_EMBED_RESAMPLE_KEY`) and the
loader reproduces it, because timm's default resampling (antialiased) gives different features.

Everything here reads the graph only (``onnx``); nothing is executed. :func:`backbone_reference_model` cuts the
graph down to the backbone (output: the final LayerNorm over all tokens) for comparisons with onnxruntime.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scilt_theory.models.backbone import POS_EMBED_NO_ANTIALIAS, POS_EMBED_RESAMPLE_KEY

__all__ = ["KNOWN_TIMM_ARCHS", "backbone_reference_model", "convert_dinov2_onnx", "create_timm_vit", "load_onnx",
           "read_dinov2_hparams", "safetensors_metadata", "timm_vit_kwargs"]

#: (embed_dim, depth, num_heads, patch_size) -> timm architecture with the same layout (MLP variants only).
KNOWN_TIMM_ARCHS = {
    (384, 12, 6, 14): "vit_small_patch14_dinov2",
    (768, 12, 12, 14): "vit_base_patch14_dinov2",
    (1024, 24, 16, 14): "vit_large_patch14_dinov2",
}

# Hugging Face module paths (relative to encoder.layer.N) of each Linear; transformers < 5 and >= 5 spellings.
_LINEARS = {
    "q": ("attention.attention.query", "attention.q_proj"),
    "k": ("attention.attention.key", "attention.k_proj"),
    "v": ("attention.attention.value", "attention.v_proj"),
    "o": ("attention.output.dense", "attention.o_proj"),
    "fc1": ("mlp.fc1",),
    "fc2": ("mlp.fc2",),
}
_SWIGLU = ("mlp.weights_in", "mlp.gate_proj")
_NAMED_PER_LAYER = {  # timm key suffix -> Hugging Face parameter (relative to encoder.layer.N)
    "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
    "ls1.gamma": "layer_scale1.lambda1",
    "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
    "ls2.gamma": "layer_scale2.lambda1",
}
_NAMED_TOP = {
    "cls_token": "embeddings.cls_token",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_PASS_THROUGH = ("Cast", "Transpose", "Reshape", "Slice", "Identity")
_EXPECTED_EPS = 1e-6


def _not_dinov2(path: str, why: str) -> ValueError:
    return ValueError(f"{path} is not an ONNX export of a Hugging Face Dinov2Model backbone: {why}.")


class _Graph:
    """Index of one ONNX graph: initializers, constants, producers and consumers of every tensor name."""

    def __init__(self, model: Any, label: str) -> None:
        from onnx import numpy_helper

        self.model, self.label, self.graph = model, label, model.graph
        self.init = {t.name: t for t in self.graph.initializer}
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for node in self.graph.node:
            for name in node.output:
                self.producer[name] = node
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self._to_array = numpy_helper.to_array

    def array(self, name: str) -> np.ndarray:
        return self._to_array(self.init[name])

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.init[name].dims)

    def is_float(self, name: str) -> bool:
        from onnx import TensorProto

        return self.init[name].data_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE,
                                             TensorProto.BFLOAT16)

    def constant(self, name: str) -> np.ndarray | None:
        """Value of ``name`` when it is an initializer, a Constant's output or a Concat/Unsqueeze of those."""
        from onnx import helper

        if name in self.init:
            return self.array(name)
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Constant":
            attr = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            return self._to_array(attr["value"]) if "value" in attr else None
        if node.op_type == "Unsqueeze":  # of a scalar: how the unfolded graphs build their shapes
            value = self.constant(node.input[0])
            return value.reshape(1) if value is not None and value.ndim == 0 else None
        if node.op_type == "Concat":
            parts = [self.constant(i) for i in node.input]
            return None if any(p is None for p in parts) else np.concatenate([np.atleast_1d(p) for p in parts])
        return None

    def nodes_in(self, scope: str, op_type: str | None = None) -> list[Any]:
        return [n for n in self.graph.node if n.name.startswith(scope + "/") and op_type in (None, n.op_type)]


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        out[attr.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _scope(node_prefix: str, module_path: str) -> str:
    """Node-name scope of a module: ``encoder.layer.3.mlp`` -> ``{prefix}/encoder/layer.3/mlp``."""
    scope = node_prefix + "/" + module_path.replace(".", "/")
    return re.sub(r"/(\w+)/(\d+)(?=/|$)", r"/\1.\2", scope)


def load_onnx(path: str | Path) -> Any:
    """Read an ONNX model with the ``onnx`` package; a missing, truncated or foreign file is a ValueError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {str(path)!r} does not exist or is not a file.")
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, TypeError, UnicodeDecodeError) as exc:  # not a (whole) model
        raise ValueError(f"{path} is not a readable ONNX model (truncated or corrupt?): "
                         f"{type(exc).__name__}") from None
    if not model.graph.node:
        raise ValueError(f"{path} is not a readable ONNX model (truncated or corrupt?): its graph has no nodes.")
    return model


class _Locator:
    """Finds the backbone's pieces in a :class:`_Graph` and remembers which initializer went where."""

    def __init__(self, graph: _Graph) -> None:
        self.g = graph
        self.label = graph.label
        self.prefix, self.node_prefix = self._prefixes()
        self.mapping: list[dict[str, Any]] = []

    def _prefixes(self) -> tuple[str, str]:
        suffix = _NAMED_TOP["cls_token"]
        names = [n for n in self.g.init if n == suffix or n.endswith("." + suffix)]
        if len(names) != 1:
            raise _not_dinov2(self.label, f"{'no' if not names else len(names)} initializer(s) named "
                                          f"'*{suffix}'")
        prefix = names[0][: -len(suffix)]
        conv_name = prefix + _NAMED_TOP["patch_embed.proj.weight"]
        convs = [n for n in self.g.consumers.get(conv_name, []) if n.op_type == "Conv"]
        if conv_name not in self.g.init or len(convs) != 1:
            raise _not_dinov2(self.label, f"no Conv node reads the patch embedding {conv_name!r}")
        marker = "/embeddings/patch_embeddings/"
        if marker not in convs[0].name:
            raise _not_dinov2(self.label, f"the patch-embedding Conv is named {convs[0].name!r}, not "
                                          f"'.../embeddings/patch_embeddings/projection/Conv' (export with the "
                                          f"TorchScript exporter, dynamo=False, to keep module paths)")
        return prefix, convs[0].name.split(marker)[0]

    def record(self, onnx_name: str, timm_key: str, **how: Any) -> None:
        self.mapping.append(dict(onnx=onnx_name, timm=timm_key, onnx_shape=list(self.g.shape(onnx_name)), **how))

    def named(self, hf_path: str, timm_key: str) -> torch.Tensor:
        """An initializer that kept its Hugging Face name, read by a node of its own module."""
        name = self.prefix + hf_path
        if name not in self.g.init:
            raise _not_dinov2(self.label, f"no initializer {name!r} (an exporter that merges identical "
                                          f"tensors leaves one initializer for several weights)")
        scope = _scope(self.node_prefix, hf_path.rsplit(".", 1)[0])
        foreign = [n.name for n in self.g.consumers.get(name, []) if not n.name.startswith(scope + "/")]
        if foreign or not self.g.consumers.get(name):
            raise _not_dinov2(self.label, f"initializer {name!r} is read outside its module {scope!r} "
                                          f"({(foreign or ['no node'])[0]}; an exporter that merges identical "
                                          f"tensors, e.g. an untrained model's ones and zeros, shares one "
                                          f"initializer between modules)")
        self.record(name, timm_key, node=self.g.consumers[name][0].name)
        return torch.from_numpy(self.g.array(name).copy())

    def linear(self, layer: int, role: str) -> tuple[torch.Tensor, torch.Tensor, str, str]:
        """(W, b, weight initializer, bias initializer) of one Linear, found by its MatMul node's scope."""
        for module in _LINEARS[role]:
            path = f"encoder.layer.{layer}.{module}"
            matmuls = self.g.nodes_in(_scope(self.node_prefix, path), "MatMul")
            if matmuls:
                break
        else:
            raise _not_dinov2(self.label, f"no MatMul node for {role} of layer {layer} "
                                          f"(looked for {', '.join(_LINEARS[role])})")
        if len(matmuls) != 1:
            raise _not_dinov2(self.label, f"{len(matmuls)} MatMul nodes in {path}, expected one")
        node = matmuls[0]
        w_name, transposed = self._matmul_weight(node)
        fan_out = self.g.shape(w_name)[0 if transposed else 1]
        adds = self.g.consumers.get(node.output[0], [])
        if len(adds) != 1 or adds[0].op_type != "Add" or not adds[0].name.startswith(_scope(self.node_prefix, path)):
            raise _not_dinov2(self.label, f"{node.name} is not followed by its bias Add (qkv_bias=False exports "
                                          f"are not supported)")
        biases = [i for i in adds[0].input if i in self.g.init]
        expected = self.prefix + path + ".bias"
        if len(biases) != 1 or self.g.shape(biases[0]) != (fan_out,):
            raise _not_dinov2(self.label, f"the Add after {node.name} does not add a ({fan_out},) bias")
        if not biases[0].startswith("onnx::") and biases[0] != expected:
            raise _not_dinov2(self.label, f"the Add after {node.name} adds {biases[0]!r}, expected {expected!r}")
        if not w_name.startswith("onnx::") and w_name != self.prefix + path + ".weight":
            raise _not_dinov2(self.label, f"{node.name} multiplies by {w_name!r}, expected "
                                          f"{self.prefix + path + '.weight'!r}")
        w = self.g.array(w_name)
        # a folded graph holds Wᵀ (in, out) for the MatMul; an unfolded one W (out, in) behind a Transpose
        w = torch.from_numpy((w if transposed else w.T).copy())
        b = torch.from_numpy(self.g.array(biases[0]).copy())
        return w, b, w_name, biases[0]

    def _matmul_weight(self, node: Any) -> tuple[str, bool]:
        """(initializer, whether the graph transposes it first) of a Linear's MatMul (data in input 0)."""
        if node.input[0] in self.g.init:
            raise _not_dinov2(self.label, f"{node.name} multiplies a weight by the data, not data by a weight")
        name = node.input[1]
        producer = self.g.producer.get(name)
        transposed = (producer is not None and producer.op_type == "Transpose"
                      and list(_attributes(producer).get("perm", [1, 0])) == [1, 0]
                      and producer.input[0] in self.g.init)
        if transposed:
            name = producer.input[0]
        if name not in self.g.init or len(self.g.shape(name)) != 2 or not self.g.is_float(name):
            raise _not_dinov2(self.label, f"{node.name} does not multiply by one 2-d weight initializer")
        return name, transposed


def _depth(loc: _Locator) -> int:
    scope = re.escape(_scope(loc.node_prefix, "encoder.layer"))
    found = {int(m.group(1)) for n in loc.g.graph.node if (m := re.match(scope + r"\.(\d+)/", n.name))}
    if not found or found != set(range(len(found))):
        raise _not_dinov2(loc.label, f"no contiguous encoder.layer.0..N-1 nodes (found {sorted(found)[:5]})")
    return len(found)


def _heads(loc: _Locator, embed_dim: int) -> tuple[int, int]:
    """(num_heads, head_dim) from the Reshape that splits layer 0's query into heads."""
    for module in _LINEARS["q"]:
        adds = [n for n in loc.g.nodes_in(_scope(loc.node_prefix, f"encoder.layer.0.{module}"), "Add")]
        for add in adds:
            for reshape in loc.g.consumers.get(add.output[0], []):
                if reshape.op_type != "Reshape":
                    continue
                shape = loc.g.constant(reshape.input[1])
                producer = loc.g.producer.get(reshape.input[1])
                if shape is None and producer is not None and producer.op_type == "Concat":
                    tail = [loc.g.constant(i) for i in producer.input[-2:]]
                    shape = None if any(t is None for t in tail) else np.concatenate([np.atleast_1d(t) for t in tail])
                if shape is None or len(shape) < 2:
                    continue
                heads, head_dim = int(shape[-2]), int(shape[-1])
                if head_dim > 0 and embed_dim % head_dim == 0 and heads in (-1, embed_dim // head_dim):
                    return embed_dim // head_dim, head_dim
    raise _not_dinov2(loc.label, "cannot read the number of attention heads from layer 0's query Reshape")


def _eps(loc: _Locator, module_path: str) -> float:
    scope = _scope(loc.node_prefix, module_path)
    for node in loc.g.nodes_in(scope, "LayerNormalization"):
        return float(_attributes(node).get("epsilon", 1e-5))
    for node in loc.g.nodes_in(scope, "Add"):  # decomposed LayerNorm: Add(ReduceMean(...), eps)
        for name in node.input:
            value = loc.g.constant(name)
            if value is not None and value.size == 1:
                return float(value.reshape(()))
    raise _not_dinov2(loc.label, f"no LayerNorm epsilon found in {scope}")


def _check_gelu(loc: _Locator, depth: int) -> None:
    for layer in range(depth):
        scope = _scope(loc.node_prefix, f"encoder.layer.{layer}.mlp")
        ops = {n.op_type for n in loc.g.nodes_in(scope)}
        gelus = [n for n in loc.g.nodes_in(scope, "Gelu")]
        exact = "Erf" in ops or (gelus and all(_attributes(n).get("approximate", "none") == "none" for n in gelus))
        if not exact or "Tanh" in ops:
            raise _not_dinov2(loc.label, f"the MLP activation of layer {layer} is not the exact (erf) GELU "
                                         f"timm uses")


def _check_resize(loc: _Locator) -> dict[str, Any]:
    """The position-grid Resize must be the rule the loader reproduces: cubic a=-0.75, half_pixel, sizes."""
    resizes = loc.g.nodes_in(_scope(loc.node_prefix, "embeddings"), "Resize")
    if len(resizes) != 1:
        raise _not_dinov2(loc.label, f"{len(resizes)} Resize nodes in the embeddings, expected the one that "
                                     f"resamples the position grid")
    node = resizes[0]
    attrs = _attributes(node)
    rule = dict(node=node.name, mode=attrs.get("mode", "nearest"),
                coordinate_transformation_mode=attrs.get("coordinate_transformation_mode", "half_pixel"),
                cubic_coeff_a=float(attrs.get("cubic_coeff_a", -0.75)),
                exclude_outside=int(attrs.get("exclude_outside", 0)),
                antialias=int(attrs.get("antialias", 0)),
                keep_aspect_ratio_policy=attrs.get("keep_aspect_ratio_policy", "stretch"))
    inputs = list(node.input) + [""] * (4 - len(node.input))
    scales = loc.g.constant(inputs[2]) if inputs[2] else None
    no_scales = not inputs[2] or (scales is not None and scales.size == 0)
    rule["target"] = "sizes" if inputs[3] and no_scales else "scales"
    expected = dict(mode="cubic", coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75,
                    exclude_outside=0, antialias=0, keep_aspect_ratio_policy="stretch", target="sizes")
    wrong = {k: rule[k] for k, v in expected.items() if rule[k] != v}
    if wrong:
        raise ValueError(f"{loc.label}: the position-grid Resize {node.name} uses {wrong}; this converter only "
                         f"reproduces {expected} (torch bicubic, align_corners=False, no antialias, to a size).")
    rule["torch"] = "F.interpolate(grid, size=(H/p, W/p), mode='bicubic', align_corners=False, antialias=False)"
    return rule


def _trace_back(loc: _Locator, name: str) -> str | None:
    """Follow a tensor through Cast/Transpose/Reshape/Slice producers back to an initializer."""
    for _ in range(16):
        if name in loc.g.init:
            return name
        node = loc.g.producer.get(name)
        if node is None or node.op_type not in _PASS_THROUGH:
            return None
        name = node.input[0]
    return None


def _trace_forward(loc: _Locator, name: str, op_type: str) -> Any | None:
    """The first ``op_type`` node reached from ``name`` through single-consumer pass-through nodes."""
    for _ in range(16):
        nodes = loc.g.consumers.get(name, [])
        if len(nodes) != 1:
            return None
        if nodes[0].op_type == op_type:
            return nodes[0]
        if nodes[0].op_type not in _PASS_THROUGH:
            return None
        name = nodes[0].output[0]
    return None


def _pos_embed(loc: _Locator, resize: dict[str, Any], embed_dim: int) -> tuple[torch.Tensor, list[str]]:
    """timm's (1, 1 + N, D) ``pos_embed``: the CLS part and the patch grid, whole or split by constant folding."""
    node = next(n for n in loc.g.graph.node if n.name == resize["node"])
    grid_name = _trace_back(loc, node.input[0])
    if grid_name is None or not loc.g.is_float(grid_name):
        raise _not_dinov2(loc.label, "the position-grid Resize does not read a position-embedding initializer")
    full = loc.prefix + "embeddings.position_embeddings"
    grid = loc.g.array(grid_name)
    if grid_name == full:  # not folded: one (1, 1 + N, D) tensor, sliced in the graph
        if grid.ndim != 3 or grid.shape[0] != 1 or grid.shape[2] != embed_dim:
            raise _not_dinov2(loc.label, f"{full} has shape {grid.shape}, expected (1, 1 + N, {embed_dim})")
        loc.record(full, "pos_embed", node=node.name, rows=[0, int(grid.shape[1])])
        return torch.from_numpy(grid.copy()), [full]
    concat = _trace_forward(loc, node.output[0], "Concat")
    others = [i for i in (concat.input if concat is not None else []) if i in loc.g.init]
    if concat is None or len(others) != 1 or concat.input[0] != others[0]:
        raise _not_dinov2(loc.label, "the resampled position grid is not joined to a CLS position initializer")
    cls = loc.g.array(others[0])
    if cls.shape != (1, 1, embed_dim) or grid.ndim != 3 or grid.shape[::2] != (1, embed_dim):
        raise _not_dinov2(loc.label, f"position parts have shapes {cls.shape} and {grid.shape}, expected "
                                     f"(1, 1, {embed_dim}) and (1, N, {embed_dim})")
    loc.record(others[0], "pos_embed", node=concat.name, rows=[0, 1], note="CLS position (constant-folded)")
    loc.record(grid_name, "pos_embed", node=node.name, rows=[1, 1 + int(grid.shape[1])],
               note="patch position grid (constant-folded)")
    return torch.from_numpy(np.concatenate([cls, grid], axis=1)), [others[0], grid_name]


def _backbone_initializers(loc: _Locator) -> set[str]:
    """Float weight initializers of the backbone: named in its namespace or read by one of its nodes."""
    scopes = tuple(_scope(loc.node_prefix, m) + "/" for m in ("embeddings", "encoder", "layernorm"))
    names = {n for n in loc.g.init if n.startswith(tuple(loc.prefix + m + "." for m in ("embeddings", "encoder",
                                                                                        "layernorm")))}
    for node in loc.g.graph.node:
        if node.name.startswith(scopes):
            names.update(i for i in node.input if i in loc.g.init)
    return {n for n in names if loc.g.is_float(n) and len(loc.g.shape(n)) >= 1}


def _read_hparams(loc: _Locator) -> dict[str, Any]:
    g, label = loc.g, loc.label
    if any(n.endswith("register_tokens") for n in g.init):
        raise _not_dinov2(label, "it has register tokens (Dinov2WithRegisters is not supported)")
    conv = g.consumers[loc.prefix + _NAMED_TOP["patch_embed.proj.weight"]][0]
    attrs = _attributes(conv)
    embed_dim, in_chans, kh, kw = g.shape(loc.prefix + _NAMED_TOP["patch_embed.proj.weight"])
    if kh != kw or list(attrs.get("strides", [])) != [kh, kw] or any(attrs.get("pads", [0])):
        raise _not_dinov2(label, f"the patch embedding is not a square, stride = kernel Conv ({attrs})")
    depth = _depth(loc)
    for module in _SWIGLU:
        if g.nodes_in(_scope(loc.node_prefix, f"encoder.layer.0.{module}")):
            raise _not_dinov2(label, "its MLP is SwiGLU (ViT-g); timm's vit_*_dinov2 MLP models need fc1/fc2")
    mlp_hidden = int(loc.linear(0, "fc1")[0].shape[0])
    heads, head_dim = _heads(loc, embed_dim)
    eps = {"layer": _eps(loc, "encoder.layer.0.norm1"), "final": _eps(loc, "layernorm")}
    for where, value in eps.items():
        if not math.isclose(value, _EXPECTED_EPS, rel_tol=1e-4):
            raise _not_dinov2(label, f"its {where} LayerNorm eps is {value:g}, timm's DINOv2 ViTs use 1e-6")
    _check_gelu(loc, depth)
    return dict(embed_dim=embed_dim, depth=depth, num_heads=heads, head_dim=head_dim, patch_size=kh,
                in_chans=in_chans, mlp_hidden=mlp_hidden, mlp_ratio=mlp_hidden / embed_dim,
                layer_norm_eps=_EXPECTED_EPS,
                act="gelu (exact, erf)", qkv_bias=True, layer_scale=True,
                timm_arch=KNOWN_TIMM_ARCHS.get((embed_dim, depth, heads, kh)) if mlp_hidden == 4 * embed_dim else None)


def read_dinov2_hparams(model_or_path: Any) -> dict[str, Any]:
    """Hyper-parameters of the Dinov2 backbone in an ONNX graph (a path or an ``onnx.ModelProto``).

    Returns
    -------
    dict
        ``embed_dim, depth, num_heads, head_dim, patch_size, in_chans, mlp_hidden, mlp_ratio, layer_norm_eps,
        pos_grid`` (the stored position grid, (h, w)), ``img_size`` (= grid × patch, the native resolution),
        ``timm_arch`` (the timm model of this layout, or None) and the graph's ``opset`` and ``producer``.

    Raises
    ------
    ValueError
        The graph is not a Dinov2Model export this module can read.
    """
    loc = _Locator(_graph(model_or_path))
    hparams = _read_hparams(loc)
    pos, _ = _pos_embed(loc, _check_resize(loc), hparams["embed_dim"])
    return {**hparams, **_grid_info(loc, pos, hparams)}


def _grid_info(loc: _Locator, pos: torch.Tensor, hparams: dict[str, Any]) -> dict[str, Any]:
    n = pos.shape[1] - 1
    side = math.isqrt(n)
    if side * side != n:
        raise _not_dinov2(loc.label, f"its position grid has {n} entries, not a square")
    opset = max((o.version for o in loc.g.model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return dict(pos_grid=[side, side], img_size=side * hparams["patch_size"], opset=int(opset),
                producer=f"{loc.g.model.producer_name} {loc.g.model.producer_version}".strip(),
                node_prefix=loc.node_prefix, initializer_prefix=loc.prefix)


def _graph(model_or_path: Any) -> _Graph:
    if isinstance(model_or_path, (str, Path)):
        return _Graph(load_onnx(model_or_path), str(model_or_path))
    return _Graph(model_or_path, "the ONNX model")


def _layer_state(loc: _Locator, layer: int) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    key = f"blocks.{layer}."
    for suffix, hf in _NAMED_PER_LAYER.items():
        state[key + suffix] = loc.named(f"encoder.layer.{layer}.{hf}", key + suffix)
    qkv_w, qkv_b, start = [], [], 0
    for role in ("q", "k", "v"):  # timm's fused qkv stacks q, k, v in this order, whatever the graph's order
        w, b, w_name, b_name = loc.linear(layer, role)
        rows = [start, start + w.shape[0]]
        node = loc.g.consumers[w_name][0].name
        loc.record(w_name, key + "attn.qkv.weight", node=node, rows=rows, transform=_transform(loc, w_name), role=role)
        loc.record(b_name, key + "attn.qkv.bias", node=loc.g.consumers[b_name][0].name, rows=rows, role=role)
        qkv_w.append(w)
        qkv_b.append(b)
        start = rows[1]
    state[key + "attn.qkv.weight"] = torch.cat(qkv_w)
    state[key + "attn.qkv.bias"] = torch.cat(qkv_b)
    for role, timm_name in (("o", "attn.proj"), ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")):
        w, b, w_name, b_name = loc.linear(layer, role)
        loc.record(w_name, f"{key}{timm_name}.weight", node=loc.g.consumers[w_name][0].name,
                   transform=_transform(loc, w_name))
        loc.record(b_name, f"{key}{timm_name}.bias", node=loc.g.consumers[b_name][0].name)
        state[f"{key}{timm_name}.weight"], state[f"{key}{timm_name}.bias"] = w, b
    return state


def _transform(loc: _Locator, weight: str) -> str:
    consumer = loc.g.consumers[weight][0]
    return "none (the graph transposes it)" if consumer.op_type == "Transpose" else "transpose (ONNX holds W^T)"


def _check_every_initializer_used_once(loc: _Locator) -> list[str]:
    """Each backbone initializer fills exactly one timm tensor (or part); returns the ignored others' names."""
    used = [m["onnx"] for m in loc.mapping]
    twice = sorted({n for n in used if used.count(n) > 1})
    if twice:
        raise ValueError(f"{loc.label}: initializer {twice[0]!r} would fill {used.count(twice[0])} timm tensors; "
                         f"the exporter merged identical tensors, so the weights cannot be told apart.")
    backbone = _backbone_initializers(loc)
    mask = loc.prefix + "embeddings.mask_token"
    left = sorted(backbone - set(used) - {mask})
    if left:
        raise _not_dinov2(loc.label, f"{len(left)} backbone initializer(s) fit no timm tensor "
                                     f"(e.g. {left[0]!r} {list(loc.g.shape(left[0]))})")
    return sorted(set(loc.g.init) - set(used))


def convert_dinov2_onnx(model_or_path: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Convert the Dinov2Model backbone in an ONNX graph into a timm ``VisionTransformer`` state dict.

    Parameters
    ----------
    model_or_path : str | Path | onnx.ModelProto
        The ONNX file (or model). Nodes outside the backbone (a decoder, a head) are ignored.

    Returns
    -------
    state_dict : dict[str, torch.Tensor]
        timm keys (``cls_token``, ``pos_embed`` (1, 1 + N, D), ``patch_embed.proj.*``, ``blocks.i.*`` with a
        fused q, k, v ``attn.qkv``, ``norm.*``), float32, contiguous; no classifier.
    info : dict
        ``hparams`` (see :func:`read_dinov2_hparams`), ``mapping`` (one entry per initializer: its name, the
        node that reads it, the timm key and rows it fills, the transform), ``ignored`` (initializers outside
        the backbone, e.g. the decoder's, and an unused mask token) and ``pos_embed_resample`` (the graph's
        Resize rule, with the name the weights file records).

    Raises
    ------
    ValueError
        The graph is not a Dinov2 backbone export, an initializer is missing, shared or left over, or the
        position grid is resampled by a rule the loader cannot reproduce.
    """
    loc = _Locator(_graph(model_or_path))
    hparams = _read_hparams(loc)
    resize = _check_resize(loc)
    pos, _ = _pos_embed(loc, resize, hparams["embed_dim"])
    hparams.update(_grid_info(loc, pos, hparams))
    state: dict[str, torch.Tensor] = {"pos_embed": pos}
    for timm_key, hf in _NAMED_TOP.items():
        state[timm_key] = loc.named(hf, timm_key)
    for layer in range(hparams["depth"]):
        state.update(_layer_state(loc, layer))
    ignored = _check_every_initializer_used_once(loc)
    state = {k: v.to(torch.float32).contiguous() for k, v in sorted(state.items())}
    info = dict(hparams=hparams, mapping=loc.mapping, ignored=ignored,
                pos_embed_resample=dict(rule=POS_EMBED_NO_ANTIALIAS, onnx_resize=resize))
    return state, info


def timm_vit_kwargs(hparams: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of a timm ``VisionTransformer`` with the layout of ``hparams`` (no classifier)."""
    return dict(img_size=hparams["img_size"], patch_size=hparams["patch_size"], in_chans=hparams["in_chans"],
                embed_dim=hparams["embed_dim"], depth=hparams["depth"], num_heads=hparams["num_heads"],
                mlp_ratio=hparams["mlp_ratio"], qkv_bias=True, init_values=1e-5, num_classes=0,
                global_pool="token")


def create_timm_vit(hparams: dict[str, Any], img_size: int | None = None) -> Any:
    """A randomly initialised timm ViT of the layout in ``hparams``, at ``img_size`` (default: native)."""
    from timm.models.vision_transformer import VisionTransformer

    kwargs = timm_vit_kwargs(hparams)
    if img_size is not None:
        kwargs["img_size"] = img_size
    return VisionTransformer(**kwargs)


def safetensors_metadata(info: dict[str, Any], **extra: str) -> dict[str, str]:
    """The string metadata of the converted weights file; it tells the loader how to resample ``pos_embed``."""
    hparams = info["hparams"]
    return {"format": "pt", POS_EMBED_RESAMPLE_KEY: info["pos_embed_resample"]["rule"],
            "pos_embed_grid": "x".join(str(s) for s in hparams["pos_grid"]),
            "timm_arch": hparams.get("timm_arch") or "", "converted_by": "scilt_theory.models.dinov2_onnx", **extra}


def backbone_reference_model(model_or_path: Any) -> Any:
    """The ONNX graph cut down to its backbone, for onnxruntime: input ``(B, C, H, W)`` with free H and W,
    one output ``tokens`` = the final LayerNorm over the CLS and patch tokens, (B, 1 + N, D)."""
    import onnx

    g = _graph(model_or_path)
    loc = _Locator(g)
    bias = loc.prefix + _NAMED_TOP["norm.bias"]
    finals = g.consumers.get(bias, [])
    if len(finals) != 1:
        raise _not_dinov2(loc.label, f"{bias!r} is read by {len(finals)} nodes, expected the final norm")
    model = onnx.ModelProto()
    model.CopyFrom(g.model)
    graph = model.graph
    out_name = finals[0].output[0]
    needed, keep = {out_name}, []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    kept_inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    inputs = [i for i in graph.input if i.name in needed and i.name not in g.init]
    del graph.input[:]
    graph.input.extend(inputs)
    for inp in graph.input:
        dims = inp.type.tensor_type.shape.dim
        for axis, label in ((0, "batch"), (2, "height"), (3, "width")):
            if len(dims) == 4:
                dims[axis].Clear()
                dims[axis].dim_param = label
    del graph.value_info[:]
    del graph.output[:]
    graph.output.append(onnx.helper.make_tensor_value_info("tokens", onnx.TensorProto.FLOAT, None))
    graph.node.append(onnx.helper.make_node("Identity", [out_name], ["tokens"], name="/reference/tokens"))
    return model

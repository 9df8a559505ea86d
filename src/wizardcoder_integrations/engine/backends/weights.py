"""A GPTQ Llama checkpoint read straight from its safetensors, repacked for the fast path's int4 kernels.

The checkpoint keeps TheBloke's (AutoGPTQ v1) packing: ``qweight`` int32 [in/8, out] with 8 consecutive input
rows per word, ``qzeros`` int32 [groups, out/8] storing zero-1, ``scales`` fp16 [groups, out], ``g_idx`` int32
[in]. The fast path repacks every linear once at load:

* act-order: input rows are sorted by group (``perm``), so each group is a contiguous run of ``group_size``
  rows; the kernels read the activation through ``perm`` instead of moving it.
* tiles: within each block of 128 input rows, word ``(block*16 + r, n)`` holds at nibble ``j`` the row
  ``block*128 + 32*(j % 4) + 2*r + j // 4``. The kernels' unpacking yields nibbles ``(j, j+4)`` as one fp16
  pair, i.e. rows ``2r, 2r+1`` of a 32-row slice, whose activations are one aligned int32 load; a group of
  32 or more rows covers whole slices.
* q, k, v (and gate, up) share their input and their ``g_idx``, so they are fused along the output dim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wizardcoder_integrations.errors import UnsupportedCheckpoint

__all__ = ["Int4Weight", "LlamaWeights", "UnsupportedCheckpoint", "repack_gptq"]

TILE_K = 128  # input rows per packing block
SLICE = TILE_K // 8  # word rows per block (16)


def tile_rows() -> torch.Tensor:
    """[8, 16]: the row inside a 128-row block held by nibble j of word-row r."""
    j = torch.arange(8)[:, None]
    r = torch.arange(SLICE)[None, :]
    return 32 * (j % 4) + 2 * r + j // 4


@dataclass
class Int4Weight:
    """One repacked 4-bit linear, ``y = x @ W`` with W [in_features, out_features]."""

    qweight: torch.Tensor  # int32 [K/8, N], tiles as described in the module docstring
    scales: torch.Tensor  # fp16 [G, N], group g covers sorted rows [g*group_size, (g+1)*group_size)
    zeros: torch.Tensor | None  # uint8 [G, N] zero points, or None when every zero point is 8 (symmetric)
    perm: torch.Tensor | None  # int32 [K]: sorted row k reads input feature perm[k]; None = identity
    group_size: int
    in_features: int
    out_features: int

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The dense weight [K, N] in the original input order (reference and prefill use)."""
        k, n = self.in_features, self.out_features
        device = self.qweight.device
        shifts = torch.arange(0, 32, 4, device=device, dtype=torch.int32)
        words = self.qweight.view(k // TILE_K, SLICE, n)
        nibbles = (words[:, None, :, :] >> shifts[None, :, None, None]) & 15  # [K/128, 8 (j), 16 (r), N]
        q = torch.empty((k // TILE_K, TILE_K, n), dtype=dtype, device=device)
        q[:, tile_rows().flatten().to(device)] = nibbles.reshape(k // TILE_K, TILE_K, n).to(dtype)
        q = q.view(k, n)
        groups = torch.arange(k, device=q.device) // self.group_size
        zero = 8.0 if self.zeros is None else self.zeros.to(dtype)[groups]
        w = (q - zero) * self.scales.to(dtype)[groups]
        if self.perm is None:
            return w
        out = torch.empty_like(w)
        out[self.perm.long()] = w
        return out


def _unpack_rows(qweight: torch.Tensor) -> torch.Tensor:
    """GPTQ qweight int32 [K/8, N] -> uint8 [K, N] (row 8*i + j is nibble j of word row i)."""
    shifts = torch.arange(0, 32, 4, device=qweight.device, dtype=torch.int32)
    q = (qweight[:, None, :] >> shifts[None, :, None]) & 15  # [K/8, 8, N]
    return q.reshape(-1, qweight.shape[1]).to(torch.uint8)


def _unpack_cols(qzeros: torch.Tensor) -> torch.Tensor:
    """GPTQ qzeros int32 [G, N/8] -> uint8 [G, N] (column 8*i + j is nibble j of word column i)."""
    shifts = torch.arange(0, 32, 4, device=qzeros.device, dtype=torch.int32)
    z = (qzeros[:, :, None] >> shifts[None, None, :]) & 15  # [G, N/8, 8]
    return z.reshape(qzeros.shape[0], -1).to(torch.uint8)


def _pack_tiles(q: torch.Tensor) -> torch.Tensor:
    """uint8 [K, N] (sorted rows) -> int32 [K/8, N] in the tile layout of the module docstring."""
    k, n = q.shape
    blocks = q.view(k // TILE_K, TILE_K, n)
    rows = tile_rows().to(q.device)
    words = torch.zeros((k // TILE_K, SLICE, n), dtype=torch.int32, device=q.device)
    for j in range(8):
        words |= blocks[:, rows[j]].to(torch.int32) << (4 * j)
    return words.view(k // 8, n)


def repack_gptq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, g_idx: torch.Tensor | None,
                *, group_size: int, zero_offset: int = 1) -> Int4Weight:
    """Repack one GPTQ 4-bit linear. ``zero_offset`` is 1 for the v1 format (zeros stored minus one)."""
    k, n = qweight.shape[0] * 8, qweight.shape[1]
    if k % TILE_K:
        raise UnsupportedCheckpoint(f"in_features {k} is not a multiple of {TILE_K}")
    gs = k if group_size in (-1, 0) else group_size
    if k % gs or gs % SLICE:
        raise UnsupportedCheckpoint(f"group_size {group_size} must divide {k} and be a multiple of {SLICE}")
    groups = k // gs
    if scales.shape != (groups, n) or qzeros.shape != (groups, n // 8):
        raise UnsupportedCheckpoint(f"scales {tuple(scales.shape)} / qzeros {tuple(qzeros.shape)} do not fit "
                                    f"{groups} groups of {n} outputs")
    q = _unpack_rows(qweight)  # [K, N]
    zeros = _unpack_cols(qzeros).to(torch.int16) + zero_offset  # [G, N]
    perm = None
    if g_idx is not None:
        g = g_idx.to(torch.int64)
        expected = torch.arange(k, device=g.device) // gs
        if not torch.equal(g, expected):
            order = torch.sort(g, stable=True).indices
            if not torch.equal(g[order], expected):
                raise UnsupportedCheckpoint("g_idx does not split the inputs into equal groups")
            perm = order.to(torch.int32)
            q = q[order]
    if bool((zeros < 0).any()) or bool((zeros > 255).any()):
        raise UnsupportedCheckpoint("zero points out of range")
    uniform = bool((zeros == 8).all())
    return Int4Weight(
        qweight=_pack_tiles(q).contiguous(),
        scales=scales.to(torch.float16).contiguous(),
        zeros=None if uniform else zeros.to(torch.uint8).contiguous(),
        perm=perm,
        group_size=gs,
        in_features=k,
        out_features=n,
    )


def fuse(weights: list[Int4Weight]) -> Int4Weight:
    """Concatenate linears that read the same input (same rows order and groups) along the output dim."""
    first = weights[0]
    for w in weights[1:]:
        same_perm = (w.perm is None and first.perm is None) or (
            w.perm is not None and first.perm is not None and torch.equal(w.perm, first.perm))
        if not same_perm or w.group_size != first.group_size or w.in_features != first.in_features:
            raise UnsupportedCheckpoint("linears reading the same input have different g_idx")
    if any(w.zeros is not None for w in weights):
        zeros = torch.cat([w.zeros if w.zeros is not None else torch.full_like(w.scales, 8, dtype=torch.uint8)
                           for w in weights], dim=1)
    else:
        zeros = None
    return Int4Weight(
        qweight=torch.cat([w.qweight for w in weights], dim=1).contiguous(),
        scales=torch.cat([w.scales for w in weights], dim=1).contiguous(),
        zeros=zeros,
        perm=first.perm,
        group_size=first.group_size,
        in_features=first.in_features,
        out_features=sum(w.out_features for w in weights),
    )


@dataclass
class LayerWeights:
    """One decoder layer: norms (fp16 [hidden]) and fused int4 linears."""

    input_norm: torch.Tensor
    post_norm: torch.Tensor
    qkv: Int4Weight  # [hidden, (heads + 2*kv_heads) * head_dim]
    o: Int4Weight  # [heads * head_dim, hidden]
    gate_up: Int4Weight  # [hidden, 2 * intermediate]
    down: Int4Weight  # [intermediate, hidden]


@dataclass
class LlamaWeights:
    """Every tensor the fast Llama forward reads, on one device."""

    embed: torch.Tensor  # [vocab, hidden]
    layers: list[LayerWeights]
    norm: torch.Tensor  # [hidden]
    lm_head: torch.Tensor  # [vocab, hidden]
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    max_positions: int

    @classmethod
    def load(cls, directory: Path, config: dict[str, Any], quant: dict[str, Any], device: torch.device,
             dtype: torch.dtype) -> LlamaWeights:
        """Read and repack a local checkpoint directory (``config`` and ``quant`` as written in it)."""
        check_supported(config, quant)
        tensors = _TensorSource(directory, device)
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or hidden // heads)
        group = int(quant.get("group_size", -1))
        offset = 0 if str(quant.get("checkpoint_format", "gptq")).lower() == "gptq_v2" else 1

        def linear(prefix: str) -> Int4Weight:
            g_idx = tensors.get(f"{prefix}.g_idx", required=False)
            return repack_gptq(tensors.get(f"{prefix}.qweight"), tensors.get(f"{prefix}.qzeros"),
                               tensors.get(f"{prefix}.scales"), g_idx, group_size=group, zero_offset=offset)

        layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"model.layers.{i}"
            layers.append(LayerWeights(
                input_norm=tensors.get(f"{p}.input_layernorm.weight").to(dtype),
                post_norm=tensors.get(f"{p}.post_attention_layernorm.weight").to(dtype),
                qkv=fuse([linear(f"{p}.self_attn.{n}_proj") for n in ("q", "k", "v")]),
                o=linear(f"{p}.self_attn.o_proj"),
                gate_up=fuse([linear(f"{p}.mlp.{n}_proj") for n in ("gate", "up")]),
                down=linear(f"{p}.mlp.down_proj"),
            ))
        embed = tensors.get("model.embed_tokens.weight").to(dtype)
        lm_head = tensors.get("lm_head.weight", required=False)
        if lm_head is None:
            lm_head = embed  # tied embeddings
        return cls(
            embed=embed, layers=layers, norm=tensors.get("model.norm.weight").to(dtype),
            lm_head=lm_head.to(dtype).contiguous(), hidden_size=hidden, num_heads=heads, num_kv_heads=kv_heads,
            head_dim=head_dim, intermediate_size=int(config["intermediate_size"]),
            vocab_size=int(embed.shape[0]), rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=_rope_theta(config),
            max_positions=int(config.get("max_position_embeddings", 2048)),
        )


def check_supported(config: dict[str, Any], quant: dict[str, Any] | None) -> None:
    """Raise :class:`UnsupportedCheckpoint` unless the fast Llama forward covers this checkpoint."""
    if config.get("model_type") != "llama":
        raise UnsupportedCheckpoint(f"model_type {config.get('model_type')!r} is not llama")
    if quant is None or int(quant.get("bits", 0)) != 4:
        raise UnsupportedCheckpoint("only 4-bit GPTQ checkpoints have int4 kernels")
    if str(quant.get("checkpoint_format", "gptq")).lower() not in ("gptq", "gptq_v2"):
        raise UnsupportedCheckpoint(f"checkpoint_format {quant.get('checkpoint_format')!r}")
    rope = config.get("rope_parameters") or {}
    if config.get("rope_scaling") or rope.get("rope_type", "default") != "default":
        raise UnsupportedCheckpoint("rope_scaling is not implemented")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise UnsupportedCheckpoint("biased linears are not implemented")
    if str(config.get("hidden_act", "silu")) != "silu":
        raise UnsupportedCheckpoint(f"activation {config.get('hidden_act')!r}")
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    if head_dim % 16 or head_dim > 256:
        raise UnsupportedCheckpoint(f"head_dim {head_dim}")
    for key in ("hidden_size", "intermediate_size"):
        if int(config[key]) % TILE_K:
            raise UnsupportedCheckpoint(f"{key} {config[key]} is not a multiple of {TILE_K}")


def _rope_theta(config: dict[str, Any]) -> float:
    """rope_theta at the top level (TheBloke's configs) or under rope_parameters (transformers 5 configs)."""
    theta = config.get("rope_theta")
    if theta is None:
        theta = (config.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    return float(theta)


class _TensorSource:
    """Tensors by name from the checkpoint's safetensors file(s), loaded onto ``device``."""

    def __init__(self, directory: Path, device: torch.device) -> None:
        from safetensors import safe_open

        index = directory / "model.safetensors.index.json"
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        else:
            files = sorted(p.name for p in directory.glob("*.safetensors"))
        if not files:
            raise UnsupportedCheckpoint(f"no *.safetensors in {directory}")
        self._where: dict[str, Any] = {}
        self._handles = [safe_open(str(directory / f), framework="pt", device=str(device)) for f in files]
        for handle in self._handles:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                self._where[name] = handle

    def get(self, name: str, *, required: bool = True) -> Any:
        handle = self._where.get(name)
        if handle is None:
            if required:
                raise UnsupportedCheckpoint(f"tensor {name!r} is missing")
            return None
        return handle.get_tensor(name)

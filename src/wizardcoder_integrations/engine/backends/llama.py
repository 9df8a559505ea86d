"""The Llama forward of the fast path, in its two phases over a paged KV cache.

``prefill`` runs packed prompts, whole (each row attending to itself) or after a cached prefix (the new
tokens attend to the row's pages); ``decode_step`` runs one token per row
with static shapes and no host synchronisation, so it can be captured in a CUDA graph. Every operation goes
through ``ops`` (Triton kernels on CUDA, plain torch as the reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from wizardcoder_integrations.engine.backends.paged_cache import PagedKVCache
from wizardcoder_integrations.engine.backends.weights import LlamaWeights

__all__ = ["CachedPrefix", "FastLlama"]


class FastLlama:
    """Weights + cache + ops; holds no per-request state (the backend owns rows, positions, block tables)."""

    def __init__(self, weights: LlamaWeights, cache: PagedKVCache, ops: Any) -> None:
        self.w = weights
        self.cache = cache
        self.ops = ops
        vocab = weights.lm_head.shape[0]
        self.lm_head = weights.lm_head  # [V_pad, hidden]: a round row count lets cuBLAS pick fast kernels
        if vocab % 128:
            pad = weights.lm_head.new_zeros((128 - vocab % 128, weights.lm_head.shape[1]))
            self.lm_head = torch.cat([weights.lm_head, pad])
            weights.lm_head = self.lm_head[:vocab]  # same memory, original shape
        self.vocab = vocab
        d = weights.head_dim
        device = weights.embed.device
        inv_freq = 1.0 / (weights.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        t = torch.arange(weights.max_positions, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)  # [P, D/2], as transformers computes them
        self.cos = freqs.cos().to(device).contiguous()
        self.sin = freqs.sin().to(device).contiguous()
        self.scale = d ** -0.5

    def prefill(self, tokens: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor,
                rows: list[int] | CachedPrefix) -> torch.Tensor:
        """Prompts packed back to back: tokens/positions/slots [T]; returns each row's last logits [n, V].

        ``rows``: each row's length when every row is a whole prompt, or a :class:`CachedPrefix` when rows
        start after positions already in the cache (their new tokens then attend to those through the pages).
        """
        w, ops = self.w, self.ops
        h = F.embedding(tokens, w.embed)  # [T, hidden]
        if isinstance(rows, CachedPrefix):
            plan = None
            last = rows.last
        else:
            plan = _AttentionPlan(rows, h.device)
            last = torch.tensor(rows).cumsum(0).sub_(1).to(h.device)  # [n]
        delta = None
        for i, layer in enumerate(w.layers):
            x = ops.add_rmsnorm(h, delta, layer.input_norm, w.rms_norm_eps)
            qkv = ops.linear(x, layer.qkv)  # [S, T, (H + 2 Hkv) D]
            k_cache, v_cache = self.cache.k[i], self.cache.v[i]
            q = ops.rope_write(qkv, positions, slots, self.cos, self.sin, k_cache, v_cache,
                               w.num_heads, w.num_kv_heads)  # [T, H, D]
            if plan is not None:
                attn = plan.attend(q, k_cache[slots], v_cache[slots])  # [T, H * D]
            else:
                assert isinstance(rows, CachedPrefix)
                attn = ops.prefill_attention(q, k_cache, v_cache, rows.block_table, rows.q_start, rows.q_len,
                                             rows.kv_len, self.cache.page_size, self.scale, rows.max_q)
            x = ops.add_rmsnorm(h, ops.linear(attn, layer.o), layer.post_norm, w.rms_norm_eps)
            delta = ops.linear(ops.silu_mul(ops.linear(x, layer.gate_up)), layer.down)
        assert delta is not None
        x = ops.add_rmsnorm(h[last].contiguous(), delta[:, last].contiguous(), w.norm, w.rms_norm_eps)
        return F.linear(x, self.lm_head)[:, : self.vocab]  # [n, V]

    def decode_step(self, tokens: torch.Tensor, positions: torch.Tensor, block_table: torch.Tensor,
                    splits: int) -> torch.Tensor:
        """tokens [B] int64, positions [B] int32 (where each token goes), block_table [B, P]: logits [B, V]."""
        w, ops, page = self.w, self.ops, self.cache.page_size
        h = F.embedding(tokens, w.embed)  # [B, hidden]
        pages = block_table.gather(1, (positions // page).long()[:, None])[:, 0].long()
        slots = pages * page + (positions % page).long()  # [B]
        lengths = positions + 1  # [B] int32
        delta = None
        for i, layer in enumerate(w.layers):
            x = ops.add_rmsnorm(h, delta, layer.input_norm, w.rms_norm_eps)
            qkv = ops.linear(x, layer.qkv)
            q = ops.rope_write(qkv, positions, slots, self.cos, self.sin, self.cache.k[i], self.cache.v[i],
                               w.num_heads, w.num_kv_heads)
            attn = ops.decode_attention(q, self.cache.k[i], self.cache.v[i], block_table, lengths, page,
                                        self.scale, splits)  # [B, H * D]
            x = ops.add_rmsnorm(h, ops.linear(attn, layer.o), layer.post_norm, w.rms_norm_eps)
            delta = ops.linear(ops.silu_mul(ops.linear(x, layer.gate_up)), layer.down)
        x = ops.add_rmsnorm(h, delta, w.norm, w.rms_norm_eps)
        return F.linear(x, self.lm_head)[:, : self.vocab]  # [B, V]


@dataclass
class CachedPrefix:
    """Prefill rows whose first positions are already cached, as device tensors (so a CUDA graph can replay
    with new values): row ``r``'s ``q_len[r]`` new tokens, packed from ``q_start[r]``, are the last of its
    ``kv_len[r]`` positions, which live in the pages of ``block_table[r]``."""

    block_table: torch.Tensor  # [n, P] int32
    q_start: torch.Tensor  # [n] int32
    q_len: torch.Tensor  # [n] int32
    kv_len: torch.Tensor  # [n] int32
    last: torch.Tensor  # [n] int64: each row's last new token in the packed batch
    max_q: int  # no row has more new tokens


class _AttentionPlan:
    """Causal attention of whole prompts packed back to back, its index tensors built once per prefill on
    the host (no device synchronisation per layer)."""

    def __init__(self, lengths: list[int], device: torch.device) -> None:
        self.single = len(lengths) == 1
        if self.single:
            return
        self.n, self.width = len(lengths), max(lengths)
        self.index = _pad_index(lengths, self.width).to(device, non_blocking=True)  # [T] into [n * width]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [T, H, D], k/v [T, Hkv, D] -> [T, H * D]."""
        total, heads, d = q.shape
        gqa = k.shape[1] != heads
        if self.single:
            out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                                 v.transpose(0, 1)[None], is_causal=True, enable_gqa=gqa)
            return out[0].transpose(0, 1).reshape(total, heads * d)

        def pad(x: torch.Tensor) -> torch.Tensor:  # right-padded rows: padding comes after a row's end
            out = x.new_zeros((self.n * self.width, x.shape[1], d))
            out[self.index] = x
            return out.view(self.n, self.width, x.shape[1], d).transpose(1, 2)  # [n, heads, L, D]

        out = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), is_causal=True, enable_gqa=gqa)
        return out.transpose(1, 2).reshape(self.n * self.width, heads * d)[self.index]


def _pad_index(lengths: list[int], width: int) -> torch.Tensor:
    """Packed position -> its place in rows right-padded to ``width``: [sum(lengths)] int64 (on the host)."""
    return torch.cat([torch.arange(n) + r * width for r, n in enumerate(lengths)])

"""The Llama forward of the fast path, in its two phases over a paged KV cache.

``prefill`` runs whole prompts (packed, each row attending to itself); ``decode_step`` runs one token per row
with static shapes and no host synchronisation, so it can be captured in a CUDA graph. Every operation goes
through ``ops`` (Triton kernels on CUDA, plain torch as the reference).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from wizardcoder_integrations.engine.backends.paged_cache import PagedKVCache
from wizardcoder_integrations.engine.backends.weights import LlamaWeights

__all__ = ["FastLlama"]


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

    def prefill(self, tokens: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor, lengths: list[int],
                context: tuple[torch.Tensor, list[int]] | None = None) -> torch.Tensor:
        """Prompts packed back to back: tokens/positions/slots [T]; returns last-position logits [n, V].

        ``context``: when some rows start after a cached prefix, (slots of every position of every row [C],
        each row's whole length): row ``r``'s ``lengths[r]`` new tokens are its last positions and attend to
        all of it. None: each row is its whole prompt.
        """
        w, ops = self.w, self.ops
        h = F.embedding(tokens, w.embed)  # [T, hidden]
        kv_slots = slots if context is None else context[0]
        plan = _AttentionPlan(lengths, lengths if context is None else context[1], h.device)
        delta = None
        for i, layer in enumerate(w.layers):
            x = ops.add_rmsnorm(h, delta, layer.input_norm, w.rms_norm_eps)
            qkv = ops.linear(x, layer.qkv)  # [S, T, (H + 2 Hkv) D]
            q = ops.rope_write(qkv, positions, slots, self.cos, self.sin, self.cache.k[i], self.cache.v[i],
                               w.num_heads, w.num_kv_heads)  # [T, H, D]
            k = self.cache.k[i][kv_slots]  # [T or C, Hkv, D], rotated
            v = self.cache.v[i][kv_slots]
            attn = plan.attend(q, k, v)  # [T, H * D]
            x = ops.add_rmsnorm(h, ops.linear(attn, layer.o), layer.post_norm, w.rms_norm_eps)
            delta = ops.linear(ops.silu_mul(ops.linear(x, layer.gate_up)), layer.down)
        last = torch.tensor(lengths).cumsum(0).sub_(1).to(h.device)  # [n]
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


class _AttentionPlan:
    """Causal attention of packed prompts, its index tensors built once per prefill on the host (no device
    synchronisation per layer). Row ``r``'s ``q_lengths[r]`` queries are the last of its ``kv_lengths[r]``
    positions (equal lengths: a whole prompt; shorter: the tail after a cached prefix)."""

    def __init__(self, q_lengths: list[int], kv_lengths: list[int], device: torch.device) -> None:
        self.total = sum(q_lengths)
        self.single = len(q_lengths) == 1
        self.causal = q_lengths == kv_lengths  # SDPA's own causal mask (flash attention) applies
        if self.single and self.causal:
            return
        n, lq, lk = len(q_lengths), max(q_lengths), max(kv_lengths)
        self.n, self.lq, self.lk = n, lq, lk
        self.q_index = _pad_index(q_lengths, lq).to(device, non_blocking=True)  # [T] into [n * Lq]
        self.kv_index = _pad_index(kv_lengths, lk).to(device, non_blocking=True)  # [C] into [n * Lk]
        self.mask = None
        if not self.causal:  # right-padded rows with the causal mask: padding after a row's end can't reach it
            ql, kl = torch.tensor(q_lengths)[:, None, None], torch.tensor(kv_lengths)[:, None, None]
            i, j = torch.arange(lq)[None, :, None], torch.arange(lk)[None, None, :]
            self.mask = ((j <= kl - ql + i) & (j < kl))[:, None].to(device, non_blocking=True)  # [n, 1, Lq, Lk]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [T, H, D], k/v [C, Hkv, D] -> [T, H * D]."""
        total, heads, d = q.shape
        gqa = k.shape[1] != heads
        if self.single and self.causal:
            out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                                 v.transpose(0, 1)[None], is_causal=True, enable_gqa=gqa)
            return out[0].transpose(0, 1).reshape(total, heads * d)

        def pad(x: torch.Tensor, index: torch.Tensor, width: int) -> torch.Tensor:
            out = x.new_zeros((self.n * width, x.shape[1], d))
            out[index] = x
            return out.view(self.n, width, x.shape[1], d).transpose(1, 2)  # [n, heads, L, D]

        out = F.scaled_dot_product_attention(pad(q, self.q_index, self.lq), pad(k, self.kv_index, self.lk),
                                             pad(v, self.kv_index, self.lk), attn_mask=self.mask,
                                             is_causal=self.mask is None, enable_gqa=gqa)
        return out.transpose(1, 2).reshape(self.n * self.lq, heads * d)[self.q_index]


def _pad_index(lengths: list[int], width: int) -> torch.Tensor:
    """Packed position -> its place in rows right-padded to ``width``: [sum(lengths)] int64 (on the host)."""
    return torch.cat([torch.arange(n) + r * width for r, n in enumerate(lengths)])

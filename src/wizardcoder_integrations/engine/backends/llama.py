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
        delta = None
        for i, layer in enumerate(w.layers):
            x = ops.add_rmsnorm(h, delta, layer.input_norm, w.rms_norm_eps)
            qkv = ops.linear(x, layer.qkv)  # [S, T, (H + 2 Hkv) D]
            q = ops.rope_write(qkv, positions, slots, self.cos, self.sin, self.cache.k[i], self.cache.v[i],
                               w.num_heads, w.num_kv_heads)  # [T, H, D]
            kv_slots = slots if context is None else context[0]
            k = self.cache.k[i][kv_slots]  # [T or C, Hkv, D], rotated
            v = self.cache.v[i][kv_slots]
            attn = self._prompt_attention(q, k, v, lengths, None if context is None else context[1])  # [T, H * D]
            x = ops.add_rmsnorm(h, ops.linear(attn, layer.o), layer.post_norm, w.rms_norm_eps)
            delta = ops.linear(ops.silu_mul(ops.linear(x, layer.gate_up)), layer.down)
        last = torch.tensor(lengths, device=h.device).cumsum(0) - 1  # [n]
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

    def _prompt_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: list[int],
                          kv_lengths: list[int] | None = None) -> torch.Tensor:
        """Causal attention of each prompt over itself: q [T, H, D], k/v [T, Hkv, D] -> [T, H * D].

        With ``kv_lengths``, k/v are [C, Hkv, D] (each row's whole context) and row ``r``'s queries are its
        last ``lengths[r]`` positions.
        """
        if kv_lengths is not None and kv_lengths != lengths:
            return _offset_attention(q, k, v, lengths, kv_lengths)
        total, heads, d = q.shape
        gqa = k.shape[1] != heads
        if len(lengths) == 1:
            out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                                 v.transpose(0, 1)[None], is_causal=True, enable_gqa=gqa)
            return out[0].transpose(0, 1).reshape(total, heads * d)
        # right-pad rows to the longest: with a causal mask, padding after a row's end cannot reach it
        n, longest = len(lengths), max(lengths)
        lens = torch.tensor(lengths, device=q.device)
        row = torch.repeat_interleave(torch.arange(n, device=q.device), lens)  # [T]
        col = torch.arange(total, device=q.device) - torch.repeat_interleave(lens.cumsum(0) - lens, lens)

        def pad(x: torch.Tensor) -> torch.Tensor:
            out = x.new_zeros((n, longest, x.shape[1], d))
            out[row, col] = x
            return out.transpose(1, 2)  # [n, heads, L, D]

        out = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), is_causal=True, enable_gqa=gqa)
        return out.transpose(1, 2)[row, col].reshape(total, heads * d)


def _offset_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_lengths: list[int],
                      kv_lengths: list[int]) -> torch.Tensor:
    """Rows whose queries are the last ``q_lengths[r]`` of their ``kv_lengths[r]`` positions, causally:
    q [T, H, D], k/v [C, Hkv, D] -> [T, H * D]."""
    total, heads, d = q.shape
    dev = q.device
    n, lq, lk = len(q_lengths), max(q_lengths), max(kv_lengths)
    ql, kl = torch.tensor(q_lengths, device=dev), torch.tensor(kv_lengths, device=dev)

    def pad(x: torch.Tensor, lens: torch.Tensor, width: int) -> torch.Tensor:
        row = torch.repeat_interleave(torch.arange(n, device=dev), lens)
        col = torch.arange(x.shape[0], device=dev) - torch.repeat_interleave(lens.cumsum(0) - lens, lens)
        out = x.new_zeros((n, width, x.shape[1], d))
        out[row, col] = x
        return out.transpose(1, 2)  # [n, heads, L, D]

    i = torch.arange(lq, device=dev)[None, :, None]
    j = torch.arange(lk, device=dev)[None, None, :]
    mask = (j <= (kl - ql)[:, None, None] + i) & (j < kl[:, None, None])  # [n, Lq, Lk]
    out = F.scaled_dot_product_attention(pad(q, ql, lq), pad(k, kl, lk), pad(v, kl, lk), attn_mask=mask[:, None],
                                         enable_gqa=k.shape[1] != heads)
    row = torch.repeat_interleave(torch.arange(n, device=dev), ql)
    col = torch.arange(total, device=dev) - torch.repeat_interleave(ql.cumsum(0) - ql, ql)
    return out.transpose(1, 2)[row, col].reshape(total, heads * d)

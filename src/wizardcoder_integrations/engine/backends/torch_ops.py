"""The fast path's operations in plain torch: the reference the Triton kernels are checked against, and the
implementation used where Triton cannot run (CPU tests of the paged cache and per-row positions).
"""

from __future__ import annotations

import torch

from wizardcoder_integrations.engine.backends.weights import Int4Weight

__all__ = ["TorchOps"]


class TorchOps:
    """Dense dequantized weights, fp32 arithmetic, one "split" per linear output."""

    name = "torch"

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype  # activations between ops
        self._dense: dict[int, torch.Tensor] = {}

    def linear(self, x: torch.Tensor, w: Int4Weight) -> torch.Tensor:
        """x [M, K] -> [1, M, N]."""
        dense = self._dense.get(id(w))
        if dense is None:
            dense = self._dense[id(w)] = w.dequantize(torch.float32)
        return (x.float() @ dense).to(self.dtype)[None]

    def add_rmsnorm(self, h: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor,
                    eps: float) -> torch.Tensor:
        """h [M, H] += sum of delta's splits (in place); returns rmsnorm(h) * weight."""
        if delta is not None:
            h.copy_((h.float() + _splits(delta, h.dtype)).to(h.dtype))
        x = h.float()
        x = (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).to(h.dtype)
        return (weight.float() * x.float()).to(h.dtype)

    def rope_write(self, qkv: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor, cos: torch.Tensor,
                   sin: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, heads: int,
                   kv_heads: int) -> torch.Tensor:
        """Rotate q and k at ``positions``; write k, v to cache ``slots``; return q [M, heads, D]."""
        m = qkv.shape[1]
        d = k_cache.shape[-1]
        y = _splits(qkv, k_cache.dtype).float()  # [M, N]
        q = y[:, : heads * d].view(m, heads, d)
        k = y[:, heads * d: (heads + kv_heads) * d].view(m, kv_heads, d)
        v = y[:, (heads + kv_heads) * d:].view(m, kv_heads, d)
        c = cos[positions.long()][:, None, :]  # [M, 1, D/2]
        s = sin[positions.long()][:, None, :]

        def rotate(x: torch.Tensor) -> torch.Tensor:
            x1, x2 = x[..., : d // 2], x[..., d // 2:]
            return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

        k_cache[slots.long()] = rotate(k).to(k_cache.dtype)
        v_cache[slots.long()] = v.to(v_cache.dtype)
        return rotate(q).to(k_cache.dtype)

    def silu_mul(self, gu: torch.Tensor) -> torch.Tensor:
        """[S, M, 2I] -> silu(gate) * up [M, I]."""
        g, u = _splits(gu, self.dtype).float().chunk(2, dim=-1)
        return (torch.nn.functional.silu(g).to(self.dtype).float() * u).to(self.dtype)

    def decode_attention(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         block_table: torch.Tensor, lengths: torch.Tensor, page: int, scale: float,
                         splits: int) -> torch.Tensor:
        """q [B, H, D] against each row's first ``lengths[b]`` cached positions: [B, H * D]."""
        b_rows, heads, d = q.shape
        out = torch.empty((b_rows, heads * d), dtype=q.dtype, device=q.device)
        for b in range(b_rows):
            n = int(lengths[b])
            pages = block_table[b, : -(-n // page)].long()
            slots = (pages[:, None] * page + torch.arange(page, device=q.device)).flatten()[:n]
            k = k_cache[slots].float()  # [n, Hkv, D]
            v = v_cache[slots].float()
            group = heads // k.shape[1]
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
            att = torch.einsum("hd,thd->ht", q[b].float(), k) * scale
            out[b] = torch.einsum("ht,thd->hd", att.softmax(-1), v).reshape(-1).to(q.dtype)
        return out

    def prefill_attention(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                          block_table: torch.Tensor, q_start: torch.Tensor, q_len: torch.Tensor,
                          kv_len: torch.Tensor, page: int, scale: float, max_q: int) -> torch.Tensor:
        """Row ``r``'s ``q_len[r]`` packed queries (from ``q_start[r]``) are the last of its ``kv_len[r]``
        cached positions and attend causally to them: [T, H * D], zeros where no row's query is."""
        total, heads, d = q.shape
        out = torch.zeros((total, heads, d), dtype=q.dtype, device=q.device)
        for r in range(block_table.shape[0]):
            n, m, start = int(kv_len[r]), int(q_len[r]), int(q_start[r])
            if m == 0:
                continue
            pages = block_table[r, : -(-n // page)].long()
            slots = (pages[:, None] * page + torch.arange(page, device=q.device)).flatten()[:n]
            group = heads // k_cache.shape[1]
            k = k_cache[slots].float().repeat_interleave(group, dim=1)  # [n, H, D]
            v = v_cache[slots].float().repeat_interleave(group, dim=1)
            att = torch.einsum("ihd,jhd->hij", q[start: start + m].float(), k) * scale
            allowed = torch.arange(n, device=q.device)[None, :] <= torch.arange(n - m, n, device=q.device)[:, None]
            att = att.masked_fill(~allowed, float("-inf"))
            out[start: start + m] = torch.einsum("hij,jhd->ihd", att.softmax(-1), v).to(q.dtype)
        return out.view(total, heads * d)


def _splits(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Sum a linear's splits [S, M, N] and round to ``dtype``, as the eager model rounds a linear's output."""
    return x.float().sum(0).to(dtype)

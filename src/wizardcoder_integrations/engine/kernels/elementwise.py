"""The small fused kernels between the matmuls of a Llama layer.

Each reads a linear's output as ``splits`` partial sums ``[S, M, N]`` (fp32 from the int4 kernels, or one
fp16 split from a dense matmul) and adds them while loading. Values are rounded to fp16 where the eager
model rounds (a linear's output, the residual stream), so both paths see the same numbers up to summation
order.
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["add_rmsnorm_kernel", "rope_write_kernel", "silu_mul_kernel"]


@triton.jit
def _sum_splits(ptr, S: tl.constexpr, stride_s, offs, mask):
    """Unrolled over the (compile-time) split count, so every split's load is in flight at once."""
    acc = tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32)
    for s in tl.static_range(1, S):
        acc += tl.load(ptr + s * stride_s + offs, mask=mask, other=0.0).to(tl.float32)
    return acc.to(tl.float16).to(tl.float32)


@triton.jit
def add_rmsnorm_kernel(
    h_ptr, delta_ptr, w_ptr, out_ptr, H, stride_ds, stride_dm, eps,
    S: tl.constexpr, HAS_DELTA: tl.constexpr, BLOCK: tl.constexpr,
):
    """grid (M,): h[m] += sum of delta splits (in place, fp16); out[m] = rmsnorm(h[m]) * w."""
    m = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < H
    h = tl.load(h_ptr + m * H + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_DELTA:
        h = (h + _sum_splits(delta_ptr + m * stride_dm, S, stride_ds, offs, mask)).to(tl.float16)
        tl.store(h_ptr + m * H + offs, h, mask=mask)
        h = h.to(tl.float32)
    var = tl.sum(h * h, axis=0) / H
    x = (h * tl.rsqrt(var + eps)).to(tl.float16).to(tl.float32)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + m * H + offs, (x * w).to(tl.float16), mask=mask)


@triton.jit
def rope_write_kernel(
    qkv_ptr, pos_ptr, slot_ptr, cos_ptr, sin_ptr, q_ptr, k_ptr, v_ptr,
    stride_s, stride_m, stride_qm, stride_kt,
    S: tl.constexpr, HEADS: tl.constexpr, KV_HEADS: tl.constexpr, D: tl.constexpr,
):
    """grid (M, HEADS + KV_HEADS): rotate q heads into q; rotate k heads and copy v heads into the cache."""
    m = tl.program_id(0)
    hh = tl.program_id(1)
    HALF: tl.constexpr = D // 2
    i = tl.arange(0, HALF)
    base = qkv_ptr + m * stride_m
    pos = tl.load(pos_ptr + m)
    cos = tl.load(cos_ptr + pos * HALF + i)
    sin = tl.load(sin_ptr + pos * HALF + i)
    if hh < HEADS:
        col = hh * D
        x1 = _sum_splits(base, S, stride_s, col + i, i < HALF)
        x2 = _sum_splits(base, S, stride_s, col + HALF + i, i < HALF)
        out = q_ptr + m * stride_qm + hh * D
        tl.store(out + i, (x1 * cos - x2 * sin).to(tl.float16))
        tl.store(out + HALF + i, (x2 * cos + x1 * sin).to(tl.float16))
    else:
        hk = hh - HEADS
        col = (HEADS + hk) * D
        x1 = _sum_splits(base, S, stride_s, col + i, i < HALF)
        x2 = _sum_splits(base, S, stride_s, col + HALF + i, i < HALF)
        slot = tl.load(slot_ptr + m).to(tl.int64)
        dst = slot * stride_kt + hk * D
        tl.store(k_ptr + dst + i, (x1 * cos - x2 * sin).to(tl.float16))
        tl.store(k_ptr + dst + HALF + i, (x2 * cos + x1 * sin).to(tl.float16))
        vcol = (HEADS + KV_HEADS + hk) * D
        v1 = _sum_splits(base, S, stride_s, vcol + i, i < HALF)
        v2 = _sum_splits(base, S, stride_s, vcol + HALF + i, i < HALF)
        tl.store(v_ptr + dst + i, v1.to(tl.float16))
        tl.store(v_ptr + dst + HALF + i, v2.to(tl.float16))


@triton.jit
def silu_mul_kernel(gu_ptr, out_ptr, INTER, stride_s, stride_m, S: tl.constexpr, BLOCK: tl.constexpr):
    """grid (M, cdiv(INTER, BLOCK)): out = silu(gate) * up, gate = columns [0, INTER), up = [INTER, 2*INTER)."""
    m = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < INTER
    g = _sum_splits(gu_ptr + m * stride_m, S, stride_s, offs, mask)
    u = _sum_splits(gu_ptr + m * stride_m, S, stride_s, INTER + offs, mask)
    act = (g / (1.0 + tl.exp(-g))).to(tl.float16).to(tl.float32)
    tl.store(out_ptr + m * INTER + offs, (act * u).to(tl.float16), mask=mask)

"""The small fused kernels between the matmuls of a Llama layer.

Each reads a linear's output as ``splits`` partial sums ``[S, M, N]`` (fp32 from the int4 kernels, or one
fp16 split from a dense matmul) and adds them while loading. Values are rounded to fp16 where the eager
model rounds (a linear's output, the residual stream), so both paths see the same numbers up to summation
order. With ``PDL`` a kernel may start before the one it follows has finished (see ``grid_dep``).
"""

from __future__ import annotations

import triton
import triton.language as tl

from wizardcoder_integrations.engine.kernels.grid_dep import gdc_launch_dependents, gdc_wait

__all__ = ["add_rmsnorm_kernel", "rope_write_kernel", "silu_mul_kernel"]


@triton.jit
def _sum_splits(ptr, S: tl.constexpr, stride_s, offs, mask):
    """The splits' sum rounded to fp16 (as a float32). One [S, BLOCK] load, so every split is in flight at once
    (a running sum would wait for each split's load in turn)."""
    if S == 1:
        acc = tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        s = tl.arange(0, triton.next_power_of_2(S))
        acc = tl.sum(tl.load(ptr + s[:, None] * stride_s + offs[None, :], mask=(s < S)[:, None] & mask[None, :],
                             other=0.0).to(tl.float32), axis=0)
    return acc.to(tl.float16).to(tl.float32)


@triton.jit
def add_rmsnorm_kernel(
    h_ptr, delta_ptr, w_ptr, out_ptr, part_ptr, count_ptr, H, stride_ds, stride_dm, eps,
    S: tl.constexpr, HAS_DELTA: tl.constexpr, BLOCK: tl.constexpr, CHUNKS: tl.constexpr, PDL: tl.constexpr,
):
    """grid (CHUNKS, M): h[m] += sum of delta splits (in place, fp16); out[m] = rmsnorm(h[m]) * w.

    With CHUNKS > 1 the programs of a row take BLOCK columns each and meet once: each writes its sum of squares
    to ``part[m, chunk]`` and counts itself in ``count[m]`` (int64), then waits until the row's CHUNKS
    programs of this launch have all counted. The counter only grows, by CHUNKS per launch, so it never needs
    resetting. A row's programs must all be resident at once: the caller keeps M * CHUNKS small.
    """
    c = tl.program_id(0)
    m = tl.program_id(1)
    if PDL:
        gdc_launch_dependents()
    offs = c * BLOCK + tl.arange(0, BLOCK)
    mask = offs < H
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if PDL:
        gdc_wait()
    h = tl.load(h_ptr + m * H + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_DELTA:
        h = (h + _sum_splits(delta_ptr + m * stride_dm, S, stride_ds, offs, mask)).to(tl.float16)
        tl.store(h_ptr + m * H + offs, h, mask=mask)
        h = h.to(tl.float32)
    ssq = tl.sum(h * h, axis=0)
    if CHUNKS > 1:
        tl.store(part_ptr + m * CHUNKS + c, ssq)
        tl.debug_barrier()  # the partial is written before the count says so
        ticket = tl.atomic_add(count_ptr + m, 1, sem="acq_rel")
        target = ticket - ticket % CHUNKS + CHUNKS  # the count once this launch's programs of row m are in
        seen = ticket + 1
        while seen < target:
            seen = tl.atomic_add(count_ptr + m, 0, sem="acquire")
        chunk = tl.arange(0, triton.next_power_of_2(CHUNKS))
        ssq = tl.sum(tl.load(part_ptr + m * CHUNKS + chunk, mask=chunk < CHUNKS, other=0.0, volatile=True), axis=0)
    x = (h * tl.rsqrt(ssq / H + eps)).to(tl.float16).to(tl.float32)
    tl.store(out_ptr + m * H + offs, (x * w).to(tl.float16), mask=mask)


@triton.jit
def rope_write_kernel(
    qkv_ptr, pos_ptr, slot_ptr, cos_ptr, sin_ptr, q_ptr, k_ptr, v_ptr,
    stride_s, stride_m, stride_qm, stride_kt,
    S: tl.constexpr, HEADS: tl.constexpr, KV_HEADS: tl.constexpr, D: tl.constexpr, PDL: tl.constexpr,
):
    """grid (M, HEADS + KV_HEADS): rotate q heads into q; rotate k heads and copy v heads into the cache."""
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
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
def silu_mul_kernel(gu_ptr, out_ptr, INTER, stride_s, stride_m, S: tl.constexpr, BLOCK: tl.constexpr,
                    PDL: tl.constexpr):
    """grid (M, cdiv(INTER, BLOCK)): out = silu(gate) * up, gate = columns [0, INTER), up = [INTER, 2*INTER)."""
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
    m = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < INTER
    g = _sum_splits(gu_ptr + m * stride_m, S, stride_s, offs, mask)
    u = _sum_splits(gu_ptr + m * stride_m, S, stride_s, INTER + offs, mask)
    act = (g / (1.0 + tl.exp(-g))).to(tl.float16).to(tl.float32)
    tl.store(out_ptr + m * INTER + offs, (act * u).to(tl.float16), mask=mask)

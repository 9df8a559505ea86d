"""Attention over a paged KV cache, each row with its own length.

The cache of a layer is ``[pages * PAGE, kv_heads, head_dim]``; row ``b`` owns the pages listed in
``block_table[b]``. Decode (one query token per row): programs split a row's positions (flash-decoding)
so a single long row still fills the GPU, walking them in chunks of ``BLOCK_T`` (part of a page, or several
pages); a second kernel merges the splits by their log-sum-exp. Prefill after a cached prefix (several query
tokens per row, the last of the row's positions): blocks of queries walk the row's pages on tensor cores,
causally. All read lengths from device memory, so one CUDA graph serves every mix of lengths.
"""

from __future__ import annotations

import triton
import triton.language as tl

from wizardcoder_integrations.engine.kernels.grid_dep import gdc_launch_dependents, gdc_wait

__all__ = ["paged_decode_dot_kernel", "paged_decode_kernel", "paged_prefill_kernel", "split_merge_kernel"]


@triton.jit
def _softmax_step(sc, v, m, l_sum, acc):
    """Fold one block of scores ``sc`` [M, N] (log2 domain) and its values ``v`` [N, D] into the running row
    maxima ``m``, sums ``l_sum`` and outputs ``acc`` (online softmax, values on tensor cores)."""
    m_new = tl.maximum(m, tl.max(sc, axis=1))
    alpha = tl.exp2(m - m_new)
    pr = tl.exp2(sc - m_new[:, None])
    l_sum = l_sum * alpha + tl.sum(pr, axis=1)
    acc = acc * alpha[:, None] + tl.dot(pr.to(v.dtype), v)
    return m_new, l_sum, acc


@triton.jit
def _split_chunks(length, s, splits, BLOCK_T: tl.constexpr):
    """The chunks [c0, c1) of BLOCK_T positions that split ``s`` of ``splits`` walks in a row of ``length``."""
    chunks = tl.cdiv(length, BLOCK_T)
    per = tl.cdiv(chunks, splits)
    c0 = s * per
    return c0, tl.minimum(c0 + per, chunks)


@triton.jit
def _chunk_rows(bt_ptr, b, stride_bt, c, length, BLOCK_T: tl.constexpr, PAGE: tl.constexpr):
    """Cache rows [BLOCK_T] of chunk ``c`` of row ``b``'s positions (``BLOCK_T`` positions, over one or several
    pages), and which of them the row has."""
    pos = c * BLOCK_T + tl.arange(0, BLOCK_T)
    valid = pos < length
    page = tl.load(bt_ptr + b * stride_bt + pos // PAGE, mask=valid, other=0).to(tl.int64)
    return page * PAGE + pos % PAGE, valid


@triton.jit
def paged_decode_kernel(
    q_ptr, k_ptr, v_ptr, bt_ptr, len_ptr, o_ptr, ml_ptr,
    scale, splits, stride_qb, stride_qh, stride_kt, stride_bt, stride_ob, stride_oh, stride_os,
    GROUP: tl.constexpr, D: tl.constexpr, PAGE: tl.constexpr, FINAL: tl.constexpr, PDL: tl.constexpr = False,
    BLOCK_T: tl.constexpr = 64, STAGES: tl.constexpr = 3,
):
    """grid (rows, heads, splits): each split walks its share of the row's chunks of BLOCK_T positions.
    FINAL (one split) writes fp16 output; else fp32 partials + (m, l)."""
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
    b = tl.program_id(0)
    h = tl.program_id(1)
    s = tl.program_id(2)
    length = tl.load(len_ptr + b)
    c0, c1 = _split_chunks(length, s, splits, BLOCK_T)
    hk = h // GROUP
    d = tl.arange(0, D)
    q = tl.load(q_ptr + b * stride_qb + h * stride_qh + d).to(tl.float32) * (scale * 1.4426950408889634)
    m = tl.full([1], float("-inf"), tl.float32)
    l_sum = tl.zeros([1], tl.float32)
    acc = tl.zeros([D], tl.float32)
    for c in tl.range(c0, c1, num_stages=STAGES):
        rows, valid = _chunk_rows(bt_ptr, b, stride_bt, c, length, BLOCK_T, PAGE)
        kv_off = rows[:, None] * stride_kt + hk * D + d[None, :]
        k = tl.load(k_ptr + kv_off, mask=valid[:, None], other=0.0).to(tl.float32)
        v = tl.load(v_ptr + kv_off, mask=valid[:, None], other=0.0).to(tl.float32)  # issued with k
        sc = tl.sum(k * q[None, :], axis=1)  # [BLOCK_T], log2 domain
        sc = tl.where(valid, sc, float("-inf"))
        m_new = tl.maximum(m, tl.max(sc, axis=0))
        alpha = tl.exp2(m - m_new)
        pr = tl.exp2(sc - m_new)
        l_sum = l_sum * alpha + tl.sum(pr, axis=0)
        acc = acc * alpha + tl.sum(pr[:, None] * v, axis=0)
        m = m_new
    if FINAL:
        out = acc / l_sum
        tl.store(o_ptr + b * stride_ob + h * stride_oh + d, out.to(tl.float16))
    else:
        tl.store(o_ptr + b * stride_ob + h * stride_oh + s * stride_os + d, acc)
        two = tl.arange(0, 2)
        ml = tl.where(two == 0, m, l_sum)
        tl.store(ml_ptr + ((b * tl.num_programs(1) + h) * splits + s) * 2 + two, ml)


@triton.jit
def paged_decode_dot_kernel(
    q_ptr, k_ptr, v_ptr, bt_ptr, len_ptr, o_ptr, ml_ptr,
    scale, splits, stride_qb, stride_qh, stride_kt, stride_bt, stride_ob, stride_oh, stride_os,
    GROUP: tl.constexpr, D: tl.constexpr, PAGE: tl.constexpr, FINAL: tl.constexpr, PDL: tl.constexpr = False,
    BLOCK_T: tl.constexpr = 64, STAGES: tl.constexpr = 3,
):
    """As :func:`paged_decode_kernel`, with both products on tensor cores: the query is broadcast to 16
    identical rows (the smallest dot), so no reduction crosses threads; row 0 is the answer. With STAGES > 1
    Triton pipelines the chunks' K/V loads through shared memory."""
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
    b = tl.program_id(0)
    h = tl.program_id(1)
    s = tl.program_id(2)
    length = tl.load(len_ptr + b)
    c0, c1 = _split_chunks(length, s, splits, BLOCK_T)
    hk = h // GROUP
    d = tl.arange(0, D)
    q = tl.load(q_ptr + b * stride_qb + h * stride_qh + d).to(tl.float32) * (scale * 1.4426950408889634)
    q16 = tl.broadcast_to(q.to(tl.float16)[None, :], [16, D])
    m = tl.full([16], float("-inf"), tl.float32)
    l_sum = tl.zeros([16], tl.float32)
    acc = tl.zeros([16, D], tl.float32)
    for c in tl.range(c0, c1, num_stages=STAGES):
        rows, valid = _chunk_rows(bt_ptr, b, stride_bt, c, length, BLOCK_T, PAGE)
        kv_off = rows[:, None] * stride_kt + hk * D + d[None, :]
        k = tl.load(k_ptr + kv_off, mask=valid[:, None], other=0.0)
        v = tl.load(v_ptr + kv_off, mask=valid[:, None], other=0.0)
        sc = tl.dot(q16, tl.trans(k))  # [16, BLOCK_T], log2 domain
        sc = tl.where(valid[None, :], sc, float("-inf"))
        m, l_sum, acc = _softmax_step(sc, v, m, l_sum, acc)
    first = (tl.arange(0, 16) == 0)[:, None]
    if FINAL:
        out = acc / l_sum[:, None]
        ptrs = o_ptr + b * stride_ob + h * stride_oh + 0 * tl.arange(0, 16)[:, None] + d[None, :]
        tl.store(ptrs, out.to(tl.float16), mask=first)
    else:
        ptrs = o_ptr + b * stride_ob + h * stride_oh + s * stride_os + 0 * tl.arange(0, 16)[:, None] + d[None, :]
        tl.store(ptrs, acc, mask=first)
        two = tl.arange(0, 2)
        ml = tl.where(two[None, :] == 0, m[:, None], l_sum[:, None])  # [16, 2]
        row = ((b * tl.num_programs(1) + h) * splits + s) * 2
        tl.store(ml_ptr + row + 0 * tl.arange(0, 16)[:, None] + two[None, :], ml, mask=first)


@triton.jit
def split_merge_kernel(
    part_ptr, ml_ptr, o_ptr, splits, stride_pb, stride_ph, stride_ps, stride_ob, stride_oh,
    D: tl.constexpr, MAX_SPLITS: tl.constexpr, PDL: tl.constexpr = False,
):
    """grid (rows, heads): out = sum_s 2^(m_s - M) acc_s / sum_s 2^(m_s - M) l_s."""
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
    b = tl.program_id(0)
    h = tl.program_id(1)
    s = tl.arange(0, MAX_SPLITS)
    live = s < splits
    base = ((b * tl.num_programs(1) + h) * splits + s) * 2
    m = tl.load(ml_ptr + base, mask=live, other=float("-inf"))
    lsum = tl.load(ml_ptr + base + 1, mask=live, other=0.0)
    top = tl.max(m, axis=0)
    w = tl.where(m == float("-inf"), 0.0, tl.exp2(m - top))
    d = tl.arange(0, D)
    acc = tl.load(part_ptr + b * stride_pb + h * stride_ph + s[:, None] * stride_ps + d[None, :],
                  mask=live[:, None], other=0.0)
    out = tl.sum(acc * w[:, None], axis=0) / tl.sum(lsum * w, axis=0)
    tl.store(o_ptr + b * stride_ob + h * stride_oh + d, out.to(tl.float16))


@triton.jit
def paged_prefill_kernel(
    q_ptr, k_ptr, v_ptr, bt_ptr, q_start_ptr, q_len_ptr, kv_len_ptr, o_ptr,
    scale, stride_qt, stride_qh, stride_kt, stride_bt, stride_ot, stride_oh,
    GROUP: tl.constexpr, D: tl.constexpr, PAGE: tl.constexpr, BLOCK_M: tl.constexpr,
):
    """grid (query blocks, heads, rows). Row ``r``'s ``q_len`` queries, packed from ``q_start``, are its last
    positions of ``kv_len``; their K/V are already in the cache. Query ``i`` attends to positions
    ``<= kv_len - q_len + i``. Blocks past a row's queries do nothing."""
    mb = tl.program_id(0)
    h = tl.program_id(1)
    r = tl.program_id(2)
    q_len = tl.load(q_len_ptr + r)
    kv_len = tl.load(kv_len_ptr + r)
    q0 = tl.load(q_start_ptr + r)
    offs = mb * BLOCK_M + tl.arange(0, BLOCK_M)
    live = offs < q_len
    qpos = kv_len - q_len + offs  # each query's position in its row
    d = tl.arange(0, D)
    t = tl.arange(0, PAGE)
    q = tl.load(q_ptr + (q0 + offs)[:, None] * stride_qt + h * stride_qh + d[None, :], mask=live[:, None],
                other=0.0)
    hk = h // GROUP
    m = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_sum = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    keys = tl.minimum(kv_len, kv_len - q_len + (mb + 1) * BLOCK_M)  # the block's last query sees these
    pages = tl.where(mb * BLOCK_M < q_len, tl.cdiv(keys, PAGE), 0)
    for p in range(0, pages):  # page 0 holds key 0, which every query sees: m is finite from here on
        page = tl.load(bt_ptr + r * stride_bt + p).to(tl.int64)
        kpos = p * PAGE + t
        kv_off = (page * PAGE + t)[:, None] * stride_kt + hk * D + d[None, :]
        k = tl.load(k_ptr + kv_off, mask=(kpos < kv_len)[:, None], other=0.0)
        v = tl.load(v_ptr + kv_off, mask=(kpos < kv_len)[:, None], other=0.0)
        sc = tl.dot(q, tl.trans(k)) * (scale * 1.4426950408889634)  # [BLOCK_M, PAGE], log2 domain
        sc = tl.where((kpos[None, :] <= qpos[:, None]) & (kpos < kv_len)[None, :], sc, float("-inf"))
        m, l_sum, acc = _softmax_step(sc, v, m, l_sum, acc)
    out = acc / l_sum[:, None]
    tl.store(o_ptr + (q0 + offs)[:, None] * stride_ot + h * stride_oh + d[None, :], out.to(o_ptr.dtype.element_ty),
             mask=live[:, None])

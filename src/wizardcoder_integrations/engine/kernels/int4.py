"""4-bit GPTQ matmuls for decode (weights read once, straight from their packed form) and a dequantizer.

Weights come repacked by :func:`wizardcoder_integrations.engine.backends.weights.repack_gptq`: in each block of
128 input rows, word ``(block*16 + r, n)`` holds at nibble ``j`` the row ``32*(j % 4) + 2*r + j // 4``. The
half-precision magic-number trick (as in FasterTransformer and Marlin) turns one LOP3 into two fp16 weights
``(n_j, n_{j+4})``, which are rows ``2r`` and ``2r+1`` of slice ``j % 4``: one int32 load of the activation gives
their partner pair, and every slice of 32 rows lies inside one group for group sizes >= 32.

* ``w4_gemv_kernel`` (one activation row): ``MODE="dot"`` multiplies and sums the fp16 pairs with f16x2
  instructions (weights pre-scaled by 1/8 so sums of four products stay far from fp16 overflow), about two
  instructions per weight; ``MODE="f32"`` is the plain shift-and-mask version (any group size, asymmetric zero
  points, and the only one Triton's interpreter can run). At batch 1 the kernel is bound by latency rather
  than bandwidth, so what it tunes is how much is in flight: several 128-row blocks per iteration
  (``UNROLL``), tiles requested one or two iterations before their use (``AHEAD``; the compiler sinks a load
  to the end of the iteration before its use, so one ahead overlaps little), or Triton's own pipelining.
* ``w4_mma_kernel`` (several rows): tensor cores, one 16-row slice of a word per ``tl.dot``.
* ``w4_dequant_kernel``: the fp16 weight for prefill's dense matmul.

Matmul kernels write float32 partial sums ``[splits, M, N]`` (split-K without atomics); the consumer of a
linear's output (norm, rope, activation) adds the splits while it reads them.
"""

from __future__ import annotations

import triton
import triton.language as tl

from wizardcoder_integrations.engine.kernels.grid_dep import gdc_launch_dependents, gdc_wait

__all__ = ["w4_dequant_kernel", "w4_gemv_kernel", "w4_mma_kernel"]

# one int32 -> h0..h3 = (n_t, n_{t+4}) as f16x2, each (q - 8) / 8 (exact): 0x64006400 = (1024, 1024),
# 0x3000 = 1/8, 0xd808 = -129, 0x2000 = 1/128, 0xc880 = -9 (h1, h3 hold 1024 + 16 q).
_UNPACK = """
.reg .b32 w2, h0, h1, h2, h3, s0, m0, s1, m1;
mov.b32 s0, 0x30003000;
mov.b32 m0, 0xd808d808;
mov.b32 s1, 0x20002000;
mov.b32 m1, 0xc880c880;
lop3.b32 h0, $W, 0x000f000f, 0x64006400, 0xea;
lop3.b32 h1, $W, 0x00f000f0, 0x64006400, 0xea;
shr.u32 w2, $W, 8;
lop3.b32 h2, w2, 0x000f000f, 0x64006400, 0xea;
lop3.b32 h3, w2, 0x00f000f0, 0x64006400, 0xea;
fma.rn.f16x2 h0, h0, s0, m0;
fma.rn.f16x2 h1, h1, s1, m1;
fma.rn.f16x2 h2, h2, s0, m0;
fma.rn.f16x2 h3, h3, s1, m1;
"""


def _asm(body: str, outputs: int) -> tl.constexpr:
    """Operands: outputs $0.., then the word, then the four activation pairs."""
    names = {"$W": f"${outputs}", **{f"$X{t}": f"${outputs + 1 + t}" for t in range(4)}}
    for key, value in names.items():
        body = body.replace(key, value)
    return tl.constexpr("{\n" + body + "}\n")


def _halves_to_f32(acc: str, out: str) -> str:
    return (f"mov.b32 {{lo, hi}}, {acc};\ncvt.f32.f16 flo, lo;\ncvt.f32.f16 fhi, hi;\n"
            f"add.f32 {out}, flo, fhi;\n")


_DECL = ".reg .b32 a0, a1, a2, a3;\n.reg .b16 lo, hi;\n.reg .f32 flo, fhi;\n"
# one group per 128 rows: all eight products in one f16x2 chain
_DOT1 = _asm(_UNPACK + _DECL + """mul.rn.f16x2 a0, h0, $X0;
fma.rn.f16x2 a0, h1, $X1, a0;
fma.rn.f16x2 a0, h2, $X2, a0;
fma.rn.f16x2 a0, h3, $X3, a0;
""" + _halves_to_f32("a0", "$0"), 1)
# groups of 64: slices 0-1 and 2-3
_DOT2 = _asm(_UNPACK + _DECL + """mul.rn.f16x2 a0, h0, $X0;
fma.rn.f16x2 a0, h1, $X1, a0;
mul.rn.f16x2 a1, h2, $X2;
fma.rn.f16x2 a1, h3, $X3, a1;
""" + _halves_to_f32("a0", "$0") + _halves_to_f32("a1", "$1"), 2)
# groups of 32: one per slice
_DOT4 = _asm(_UNPACK + _DECL + """mul.rn.f16x2 a0, h0, $X0;
mul.rn.f16x2 a1, h1, $X1;
mul.rn.f16x2 a2, h2, $X2;
mul.rn.f16x2 a3, h3, $X3;
""" + "".join(_halves_to_f32(f"a{t}", f"${t}") for t in range(4)), 4)
# eight fp16 tiles (q - 8) for the tensor-core kernel: unscaled variant of the unpack
_F16 = tl.constexpr("""{
.reg .b32 w2, h0, h1, h2, h3, m0, m1, sc;
mov.b32 m0, 0x64086408;
mov.b32 m1, 0xd480d480;
mov.b32 sc, 0x2c002c00;
lop3.b32 h0, $8, 0x000f000f, 0x64006400, 0xea;
lop3.b32 h1, $8, 0x00f000f0, 0x64006400, 0xea;
shr.u32 w2, $8, 8;
lop3.b32 h2, w2, 0x000f000f, 0x64006400, 0xea;
lop3.b32 h3, w2, 0x00f000f0, 0x64006400, 0xea;
sub.f16x2 h0, h0, m0;
fma.rn.f16x2 h1, h1, sc, m1;
sub.f16x2 h2, h2, m0;
fma.rn.f16x2 h3, h3, sc, m1;
mov.b32 {$0, $4}, h0;
mov.b32 {$1, $5}, h1;
mov.b32 {$2, $6}, h2;
mov.b32 {$3, $7}, h3;
}
""")


@triton.jit
def _nibbles_f16(w, USE_ASM: tl.constexpr):
    """int32 tile -> eight float16 tiles q_j - 8 (exact), j = nibble."""
    if USE_ASM:
        return tl.inline_asm_elementwise(_F16, "=h,=h,=h,=h,=h,=h,=h,=h,r", [w], dtype=(tl.float16,) * 8,
                                         is_pure=True, pack=1)
    else:
        return ((((w >> 0) & 15) - 8).to(tl.float16), (((w >> 4) & 15) - 8).to(tl.float16),
                (((w >> 8) & 15) - 8).to(tl.float16), (((w >> 12) & 15) - 8).to(tl.float16),
                (((w >> 16) & 15) - 8).to(tl.float16), (((w >> 20) & 15) - 8).to(tl.float16),
                (((w >> 24) & 15) - 8).to(tl.float16), (((w >> 28) & 15) - 8).to(tl.float16))


@triton.jit
def _row_of(j: tl.constexpr, r):
    """Row inside a 128-row block of nibble j of word-row r."""
    return 32 * (j % 4) + 2 * r + j // 4


@triton.jit
def _x_index(perm_ptr, k, HAS_PERM: tl.constexpr):
    if HAS_PERM:
        return tl.load(perm_ptr + k)
    else:
        return k


@triton.jit
def _x_pair(x_ptr, perm_ptr, k, HAS_PERM: tl.constexpr):
    """Activations at rows k and k+1 (k even) as one int32 holding two fp16."""
    if HAS_PERM:
        lo = tl.load(x_ptr + tl.load(perm_ptr + k)).to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
        hi = tl.load(x_ptr + tl.load(perm_ptr + k + 1)).to(tl.int16, bitcast=True).to(tl.int32)
        return lo | (hi << 16)
    else:
        return tl.load(x_ptr.to(tl.pointer_type(tl.int32)) + k // 2)


@triton.jit
def _scale_rows(s_ptr, g, offs_n, N, valid):
    """Scales of groups g [R] as an [R, BN] fp16 tile in the weights' layout; rows past the split read 0."""
    return tl.load(s_ptr + g[:, None] * N + offs_n[None, :], mask=valid[:, None], other=0.0)


@triton.jit
def _tile_weights(qw_ptr, s_ptr, b, b1, i, offs_n, N, GROUP: tl.constexpr, SCALES: tl.constexpr):
    """The words [R, BN] of the tile of 128-row blocks starting at b (word row i of the tile is row b*16 + i),
    and, with SCALES (one group per block), their scales; rows past block b1 read as 0."""
    blk = i // 16
    valid = b + blk < b1
    w = tl.load(qw_ptr + (b * 16 + i)[:, None] * N + offs_n[None, :], mask=valid[:, None], other=0)
    if SCALES:
        s = _scale_rows(s_ptr, (tl.minimum(b + blk, b1 - 1) * 128) // GROUP, offs_n, N, valid)
    else:
        s = tl.zeros([1, 1], dtype=tl.float16)
    return w, s


@triton.jit
def _tile_acts(x_ptr, perm_ptr, b, b1, i, HAS_PERM: tl.constexpr):
    """Activation pairs [R, 1] of the four 32-row slices of each word row (clamped to the split's blocks)."""
    base = tl.minimum(b + i // 16, b1 - 1) * 128 + 2 * (i % 16)
    return (_x_pair(x_ptr, perm_ptr, base, HAS_PERM)[:, None], _x_pair(x_ptr, perm_ptr, base + 32, HAS_PERM)[:, None],
            _x_pair(x_ptr, perm_ptr, base + 64, HAS_PERM)[:, None],
            _x_pair(x_ptr, perm_ptr, base + 96, HAS_PERM)[:, None])


@triton.jit
def _gemv_tile(acc, w, xs, s, x_ptr, s_ptr, z_ptr, perm_ptr, b, b1, i, offs_n, N,
               GROUP: tl.constexpr, HAS_PERM: tl.constexpr, HAS_ZEROS: tl.constexpr, MODE: tl.constexpr):
    """acc [R, BN] += this tile's products (xs and s as loaded by the two functions above)."""
    blk = i // 16
    valid = b + blk < b1  # rows of a last, partial tile add nothing: their scales read as 0
    base = tl.minimum(b + blk, b1 - 1) * 128  # [R] first row of each word row's block
    if MODE == "dot":  # symmetric, GROUP in {>= 128, 64, 32}; sums of (q - 8) / 8 * x
        x0, x1, x2, x3 = xs
        if GROUP >= 128:
            p = tl.inline_asm_elementwise(_DOT1, "=r,r,r,r,r,r", [w, x0, x1, x2, x3], dtype=tl.float32,
                                          is_pure=True, pack=1)
            acc += p * s.to(tl.float32)
        elif GROUP == 64:
            pa, pb = tl.inline_asm_elementwise(_DOT2, "=r,=r,r,r,r,r,r", [w, x0, x1, x2, x3],
                                               dtype=(tl.float32, tl.float32), is_pure=True, pack=1)
            g = base // 64
            acc += pa * _scale_rows(s_ptr, g, offs_n, N, valid).to(tl.float32)
            acc += pb * _scale_rows(s_ptr, g + 1, offs_n, N, valid).to(tl.float32)
        else:
            p0, p1, p2, p3 = tl.inline_asm_elementwise(_DOT4, "=r,=r,=r,=r,r,r,r,r,r", [w, x0, x1, x2, x3],
                                                       dtype=(tl.float32,) * 4, is_pure=True, pack=1)
            g = base // 32
            acc += p0 * _scale_rows(s_ptr, g, offs_n, N, valid).to(tl.float32)
            acc += p1 * _scale_rows(s_ptr, g + 1, offs_n, N, valid).to(tl.float32)
            acc += p2 * _scale_rows(s_ptr, g + 2, offs_n, N, valid).to(tl.float32)
            acc += p3 * _scale_rows(s_ptr, g + 3, offs_n, N, valid).to(tl.float32)
    else:  # "f32": any GROUP (multiple of 16), optional zero points
        r = i % 16
        for j in tl.static_range(8):
            k = base + _row_of(j, r)  # [R]
            d = ((w >> (4 * j)) & 15).to(tl.float32) - 8.0
            x = tl.load(x_ptr + _x_index(perm_ptr, k, HAS_PERM)).to(tl.float32)[:, None]
            g = k // GROUP
            if HAS_ZEROS:
                d += 8.0 - tl.load(z_ptr + g[:, None] * N + offs_n[None, :]).to(tl.float32)
            acc += d * x * _scale_rows(s_ptr, g, offs_n, N, valid).to(tl.float32)
    return acc


@triton.jit
def w4_gemv_kernel(
    x_ptr, qw_ptr, s_ptr, z_ptr, perm_ptr, out_ptr,
    N, K, SPLIT_K, stride_os,
    GROUP: tl.constexpr, BLOCK_N: tl.constexpr, HAS_PERM: tl.constexpr, HAS_ZEROS: tl.constexpr,
    MODE: tl.constexpr, UNROLL: tl.constexpr = 1, AHEAD: tl.constexpr = 1, STAGES: tl.constexpr = 1,
    PDL: tl.constexpr = False,
):
    """One activation row: out[split, 0, n] = sum over this split's k of x[k] * W[k, n] (CUDA cores).

    An iteration multiplies UNROLL blocks of 128 rows, one [16 * UNROLL, BLOCK_N] tile of words. With
    STAGES == 1 the tiles AHEAD (1 or 2) iterations on are already loading into registers (words, scales and
    activations: a tile's loads are in flight a whole iteration before their use); STAGES > 1 leaves the
    pipelining to Triton (through shared memory). With PDL the first tiles' words and scales are requested
    before waiting for the kernel that writes x, so they stream in while that kernel finishes.
    """
    if PDL:
        gdc_launch_dependents()
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    i = tl.arange(0, 16 * UNROLL)  # word row inside the tile
    blocks = K // 128
    per = tl.cdiv(blocks, SPLIT_K)
    b0 = pid_k * per
    b1 = tl.minimum(b0 + per, blocks)
    acc = tl.zeros([16 * UNROLL, BLOCK_N], dtype=tl.float32)
    SCALES: tl.constexpr = MODE == "dot" and GROUP >= 128  # scales travel with the words
    ACTS: tl.constexpr = MODE == "dot"  # and so do the activations
    if STAGES == 1:
        w1, s1 = _tile_weights(qw_ptr, s_ptr, b0, b1, i, offs_n, N, GROUP, SCALES)
        if AHEAD == 2:
            w2, s2 = _tile_weights(qw_ptr, s_ptr, b0 + UNROLL, b1, i, offs_n, N, GROUP, SCALES)
    if PDL:
        gdc_wait()
    if STAGES == 1 and ACTS:
        xs1 = _tile_acts(x_ptr, perm_ptr, b0, b1, i, HAS_PERM)
        if AHEAD == 2:
            xs2 = _tile_acts(x_ptr, perm_ptr, b0 + UNROLL, b1, i, HAS_PERM)
    for b in tl.range(b0, b1, UNROLL, num_stages=STAGES):
        if STAGES == 1:  # this iteration's tile is in registers: request the one AHEAD iterations on
            w, s = w1, s1
            xs = xs1 if ACTS else None
            nxt = b + AHEAD * UNROLL
            if AHEAD == 2:
                w1, s1 = w2, s2
                w2, s2 = _tile_weights(qw_ptr, s_ptr, nxt, b1, i, offs_n, N, GROUP, SCALES)
                if ACTS:
                    xs1 = xs2
                    xs2 = _tile_acts(x_ptr, perm_ptr, nxt, b1, i, HAS_PERM)
            else:
                w1, s1 = _tile_weights(qw_ptr, s_ptr, nxt, b1, i, offs_n, N, GROUP, SCALES)
                if ACTS:
                    xs1 = _tile_acts(x_ptr, perm_ptr, nxt, b1, i, HAS_PERM)
        else:
            w, s = _tile_weights(qw_ptr, s_ptr, b, b1, i, offs_n, N, GROUP, SCALES)
            xs = _tile_acts(x_ptr, perm_ptr, b, b1, i, HAS_PERM) if ACTS else None
        acc = _gemv_tile(acc, w, xs, s, x_ptr, s_ptr, z_ptr, perm_ptr, b, b1, i, offs_n, N, GROUP, HAS_PERM,
                         HAS_ZEROS, MODE)
    out = tl.sum(acc, axis=0)  # [BN]
    if MODE == "dot":
        out = out * 8.0
    tl.store(out_ptr + pid_k * stride_os + offs_n, out)


@triton.jit
def _flush_group(acc, blk, s_ptr, base, t: tl.constexpr, offs_n, N, GROUP: tl.constexpr, SWAP: tl.constexpr):
    """After slice t: if it closes a group, add the group's sum times its scales. Returns (acc, blk)."""
    if GROUP <= 32 or t % (GROUP // 32) == GROUP // 32 - 1 or t == 3:
        s = tl.load(s_ptr + ((base + 32 * t) // GROUP) * N + offs_n).to(tl.float32)
        if SWAP:
            acc += blk * s[:, None]
        else:
            acc += blk * s[None, :]
        blk = tl.zeros_like(blk)
    return acc, blk


@triton.jit
def w4_mma_kernel(
    x_ptr, qw_ptr, s_ptr, z_ptr, perm_ptr, out_ptr,
    M, N, K, SPLIT_K, stride_xm, stride_os, stride_om,
    GROUP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HAS_PERM: tl.constexpr,
    HAS_ZEROS: tl.constexpr, USE_ASM: tl.constexpr, VARIANT: tl.constexpr, PDL: tl.constexpr = False,
):
    """Several activation rows: out[split, m, n] on tensor cores.

    VARIANT 0: one dot per 16-row slice of the words (any group size, zero points).
    VARIANT 1: the two nibbles of a 32-row slice joined into one K=32 operand (symmetric, GROUP >= 32).
    VARIANT 2: as 1, computing out^T = W^T x^T so the weight tile is the large (M) side of the product.
    VARIANT 3: as 2 with a whole 128-row block in one K=128 dot, the activations gathered in the order the
    unpacked nibbles come in (symmetric, GROUP a multiple of 128: one scale per block).
    """
    if PDL:
        gdc_launch_dependents()
        gdc_wait()
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    pid_m = tl.program_id(2)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < M
    r = tl.arange(0, 16)
    blocks = K // 128
    per = tl.cdiv(blocks, SPLIT_K)
    b0 = pid_k * per
    b1 = tl.minimum(b0 + per, blocks)
    if VARIANT >= 2:
        acc = tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32)
    else:
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for b in range(b0, b1):
        base = b * 128
        if VARIANT == 0:
            w = tl.load(qw_ptr + (b * 16 + r)[:, None] * N + offs_n[None, :])  # [16, BN] int32
            ds = _nibbles_f16(w, USE_ASM)
            blk = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
            for t in tl.static_range(4):  # slice t = rows [32 t, 32 t + 32): nibbles t and t + 4
                for j in tl.static_range(t, 8, 4):
                    k = base + _row_of(j, r)  # [16]
                    xk = _x_index(perm_ptr, k, HAS_PERM)
                    x = tl.load(x_ptr + offs_m[:, None] * stride_xm + xk[None, :], mask=m_mask[:, None], other=0.0)
                    d = ds[j]
                    if HAS_ZEROS or GROUP < 32:
                        g = (k // GROUP)[:, None]
                        s = tl.load(s_ptr + g * N + offs_n[None, :]).to(tl.float32)
                        dz = d.to(tl.float32)
                        if HAS_ZEROS:
                            dz += 8.0 - tl.load(z_ptr + g * N + offs_n[None, :]).to(tl.float32)
                        acc = tl.dot(x.to(tl.float16), (dz * s).to(tl.float16), acc)
                    else:
                        blk = tl.dot(x.to(tl.float16), d, blk)
                if not (HAS_ZEROS or GROUP < 32):
                    acc, blk = _flush_group(acc, blk, s_ptr, base, t, offs_n, N, GROUP, False)
        elif VARIANT == 1:
            w = tl.load(qw_ptr + (b * 16 + r)[:, None] * N + offs_n[None, :])  # [16, BN] int32
            ds = _nibbles_f16(w, USE_ASM)
            blk = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
            for t in tl.static_range(4):
                wt = tl.reshape(tl.permute(tl.join(ds[t], ds[t + 4]), (0, 2, 1)), (32, BLOCK_N))  # row 2r + h
                xk = _x_index(perm_ptr, base + 32 * t + tl.arange(0, 32), HAS_PERM)
                x = tl.load(x_ptr + offs_m[:, None] * stride_xm + xk[None, :], mask=m_mask[:, None], other=0.0)
                blk = tl.dot(x.to(tl.float16), wt, blk)
                acc, blk = _flush_group(acc, blk, s_ptr, base, t, offs_n, N, GROUP, False)
        elif VARIANT == 3:
            w = tl.load(qw_ptr + (b * 16 + r)[None, :] * N + offs_n[:, None])  # [BN, 16] int32
            ds = _nibbles_f16(w, USE_ASM)
            # column r*8 + c*4 + e*2 + a holds nibble j = 2a + e + 4c of word row r: block row 32(2a+e) + 2r + c
            wt = tl.reshape(tl.join(tl.join(tl.join(ds[0], ds[4]), tl.join(ds[1], ds[5])),
                                    tl.join(tl.join(ds[2], ds[6]), tl.join(ds[3], ds[7]))), (BLOCK_N, 128))
            q = tl.arange(0, 128)  # the block row of each column of wt
            xk = _x_index(perm_ptr, base + 32 * (2 * (q % 2) + (q // 2) % 2) + 2 * (q // 8) + (q // 4) % 2, HAS_PERM)
            x = tl.load(x_ptr + offs_m[None, :] * stride_xm + xk[:, None], mask=m_mask[None, :], other=0.0)
            s = tl.load(s_ptr + (base // GROUP) * N + offs_n).to(tl.float32)
            acc += tl.dot(wt, x.to(tl.float16)) * s[:, None]  # [BN, BM]
        else:
            w = tl.load(qw_ptr + (b * 16 + r)[None, :] * N + offs_n[:, None])  # [BN, 16] int32
            ds = _nibbles_f16(w, USE_ASM)
            blk = tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32)
            for t in tl.static_range(4):
                wt = tl.reshape(tl.join(ds[t], ds[t + 4]), (BLOCK_N, 32))  # column 2r + h
                xk = _x_index(perm_ptr, base + 32 * t + tl.arange(0, 32), HAS_PERM)
                x = tl.load(x_ptr + offs_m[None, :] * stride_xm + xk[:, None], mask=m_mask[None, :], other=0.0)
                blk = tl.dot(wt, x.to(tl.float16), blk)  # [BN, BM]
                acc, blk = _flush_group(acc, blk, s_ptr, base, t, offs_n, N, GROUP, True)
    if VARIANT >= 2:
        out = out_ptr + pid_k * stride_os + offs_m[None, :] * stride_om + offs_n[:, None]
        tl.store(out, acc, mask=m_mask[None, :])
    else:
        out = out_ptr + pid_k * stride_os + offs_m[:, None] * stride_om + offs_n[None, :]
        tl.store(out, acc, mask=m_mask[:, None])


@triton.jit
def w4_dequant_kernel(
    qw_ptr, s_ptr, z_ptr, perm_ptr, out_ptr, N,
    GROUP: tl.constexpr, BLOCK_N: tl.constexpr, HAS_PERM: tl.constexpr, HAS_ZEROS: tl.constexpr,
    USE_ASM: tl.constexpr,
):
    """W[k, n] fp16 in the original input order, for prefill's dense matmul: grid (K/128, N/BLOCK_N)."""
    b = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    r = tl.arange(0, 16)
    w = tl.load(qw_ptr + (b * 16 + r)[:, None] * N + offs_n[None, :])
    ds = _nibbles_f16(w, USE_ASM)
    for j in tl.static_range(8):
        k = b * 128 + _row_of(j, r)  # sorted rows
        g = (k // GROUP)[:, None]
        d = ds[j].to(tl.float32)
        if HAS_ZEROS:
            d += 8.0 - tl.load(z_ptr + g * N + offs_n[None, :]).to(tl.float32)
        s = tl.load(s_ptr + g * N + offs_n[None, :]).to(tl.float32)
        row = _x_index(perm_ptr, k, HAS_PERM)
        tl.store(out_ptr + row[:, None] * N + offs_n[None, :], (d * s).to(tl.float16))

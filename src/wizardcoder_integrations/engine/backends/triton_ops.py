"""The fast path's operations as Triton kernels, with each int4 matmul's launch settings measured per shape.

Decode-sized inputs (up to ``dense_threshold`` rows) read the packed weights directly; larger prefills
dequantize a linear to fp16 once and use the dense matmul (compute-bound there, where cuBLAS is best).
On Hopper and newer, launches of up to ``pdl_rows`` rows use programmatic dependent launch: each kernel may
start while the one before it finishes, and an int4 matmul streams its first weights in meanwhile (decode of
a few rows is a chain of short kernels, where the gaps between them count).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from wizardcoder_integrations.engine.backends.weights import Int4Weight

__all__ = ["AttentionConfig", "LinearConfig", "TritonOps"]

BUCKETS = (1, 16, 32, 64, 128)  # rows a linear launch is tuned for
SPLIT_READ_BYTES_PER_S = 1.5e12  # tuning charges each split-K partial sum its read by the consuming kernel
NORM_PROGRAMS = 64  # add_rmsnorm splits rows over several programs while rows * programs stays within this
PDL_ROWS = 8  # launches of at most this many rows use programmatic dependent launch
# gemv tunings with several 128-row blocks per iteration: (block_n, warps, blocks per iteration, tiles ahead)
UNROLLED = ((64, 4, 2, 1), (64, 4, 2, 2), (64, 4, 4, 1), (128, 4, 2, 1), (64, 8, 4, 1), (64, 8, 4, 2),
            (64, 8, 8, 1), (32, 4, 4, 1))


@dataclass(frozen=True)
class LinearConfig:
    """Launch settings of one int4 matmul."""

    kind: str  # "gemv" (one row, CUDA cores) or "mma" (tensor cores)
    block_m: int
    block_n: int
    split_k: int
    warps: int
    use_asm: bool  # gemv: f16x2 "dot" inner loop (else fp32); mma/dequant: inline-PTX unpacking
    variant: int = 0  # mma: 0 one dot per 16-row slice, 1 K=32 joined slices, 2 the same as out^T = W^T x^T,
    # 3 as 2 with one K=128 dot per block
    unroll: int = 1  # gemv: 128-row blocks per iteration
    ahead: int = 1  # gemv: iterations a tile is requested before its use (registers)
    stages: int = 1  # > 1: Triton's num_stages (gemv: instead of the register prefetch; mma: else Triton's default)


@dataclass(frozen=True)
class AttentionConfig:
    """Launch settings of the decode attention (besides its split count, which the backend keeps)."""

    dot: bool = False  # tensor cores (the query broadcast to 16 rows), else CUDA cores
    warps: int = 4
    block_t: int = 0  # positions per iteration; 0 = one page
    stages: int = 3  # > 1: Triton pipelines the K/V loads through shared memory (3: its default depth)


MMA_STAGES = (2, 4)  # tensor-core matmul candidates besides Triton's default pipeline depth (3)
# decode-attention candidates besides the CUDA-core kernel: (positions per iteration in pages, warps, stages)
ATTENTION_DOT = ((0.5, 4, 1), (1, 4, 1), (1, 4, 3), (2, 4, 1), (2, 4, 3), (4, 8, 1))


def bucket_of(rows: int) -> int:
    for b in BUCKETS:
        if rows <= b:
            return b
    return BUCKETS[-1]


def _shape_key(w: Int4Weight, bucket: int) -> tuple[Any, ...]:
    return (w.in_features, w.out_features, w.group_size, w.perm is not None, w.zeros is not None, bucket)


def dot_ready(w: Int4Weight) -> bool:
    """Whether the f16x2 gemv handles this weight (symmetric, groups of 32, 64 or whole 128-row blocks)."""
    return w.zeros is None and (w.group_size in (32, 64) or w.group_size % 128 == 0)


@functools.cache
def pdl_supported(device: torch.device) -> bool:
    """Programmatic dependent launch: a CUDA GPU of compute capability 9.0 or newer and a Triton that has it."""
    if device.type != "cuda" or torch.cuda.get_device_capability(device)[0] < 9:
        return False
    try:
        from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait  # noqa: F401
    except ImportError:
        return False
    return True


class TritonOps:
    """Triton kernels; ``configs`` maps a weight shape and row bucket to its measured launch settings."""

    name = "triton"

    def __init__(self, *, dense_threshold: int = 128, use_asm: bool = True, pdl_rows: int = PDL_ROWS,
                 norm_block: int = 512) -> None:
        self.dense_threshold = dense_threshold
        self.use_asm = use_asm
        self.pdl_rows = pdl_rows  # launches of up to this many rows use PDL where the device has it (0: never)
        self.norm_block = norm_block  # columns per add_rmsnorm program when a row is split over programs
        self.configs: dict[tuple[Any, ...], LinearConfig] = {}
        self._workspace: torch.Tensor | None = None  # fp16 dense weight of the linear being prefilled
        self._norm_counts: dict[torch.device, torch.Tensor] = {}  # add_rmsnorm's per-row program counters
        self.attention: dict[int, AttentionConfig] = {}  # rows -> measured decode-attention launch

    def _pdl(self, device: torch.device, rows: int) -> dict[str, bool]:
        """Launch arguments: the kernels' PDL flag, and Triton's launch option where it is on."""
        if rows <= self.pdl_rows and pdl_supported(device):
            return {"PDL": True, "launch_pdl": True}
        return {"PDL": False}

    # -- int4 linears ------------------------------------------------------------------------------------
    def default_config(self, w: Int4Weight, rows: int) -> LinearConfig:
        block_n = 128 if w.out_features % 128 == 0 else 64
        if rows == 1:
            return LinearConfig("gemv", 1, block_n, 4, 4, self.use_asm and dot_ready(w))
        return LinearConfig("mma", min(64, max(16, bucket_of(rows))), block_n, 1, 4, self.use_asm,
                            2 if dot_ready(w) and w.group_size >= 32 else 0)

    def config_for(self, w: Int4Weight, rows: int) -> LinearConfig:
        cfg = self.configs.get(_shape_key(w, bucket_of(rows)))
        if cfg is None or (cfg.kind == "gemv" and rows != 1):
            return self.default_config(w, rows)
        return cfg

    def linear(self, x: torch.Tensor, w: Int4Weight) -> torch.Tensor:
        """x [M, K] fp16 -> partial sums [S, M, N] (fp32), or [1, M, N] fp16 for large M.

        Large M (prefill) dequantizes the weight into a reused fp16 workspace and multiplies densely.
        """
        rows = x.shape[0]
        if rows <= self.dense_threshold:
            return self.launch(x, w, self.config_for(w, rows))
        numel = w.in_features * w.out_features
        if self._workspace is None or self._workspace.numel() < numel:
            self._workspace = torch.empty(numel, dtype=torch.float16, device=x.device)
        dense = self.dequantize(w, self._workspace[:numel].view(w.in_features, w.out_features))
        return torch.matmul(x, dense)[None]

    def launch(self, x: torch.Tensor, w: Int4Weight, cfg: LinearConfig,
               out: torch.Tensor | None = None) -> torch.Tensor:
        from wizardcoder_integrations.engine.kernels.int4 import w4_gemv_kernel, w4_mma_kernel

        rows, k = x.shape
        n = w.out_features
        if n % cfg.block_n or k != w.in_features:
            raise ValueError(f"linear [{k}, {n}] does not fit {cfg}")
        if out is None:
            out = torch.empty((cfg.split_k, rows, n), dtype=torch.float32, device=x.device)
        zeros = w.zeros if w.zeros is not None else w.scales
        perm = w.perm if w.perm is not None else w.qweight
        flags = {"GROUP": w.group_size, "HAS_PERM": w.perm is not None, "HAS_ZEROS": w.zeros is not None,
                 "BLOCK_N": cfg.block_n, "num_warps": cfg.warps, **self._pdl(x.device, rows)}
        if cfg.kind == "gemv":
            if rows != 1:
                raise ValueError("the gemv kernel takes one row")
            mode = "dot" if cfg.use_asm and dot_ready(w) else "f32"
            w4_gemv_kernel[(n // cfg.block_n, cfg.split_k)](
                x, w.qweight, w.scales, zeros, perm, out, n, k, cfg.split_k, rows * n, MODE=mode,
                UNROLL=cfg.unroll, AHEAD=cfg.ahead, STAGES=cfg.stages, **flags)
        else:
            grid = (n // cfg.block_n, cfg.split_k, math.ceil(rows / cfg.block_m))
            if cfg.variant and not dot_ready(w):
                raise ValueError("mma variants 1 to 3 need a symmetric weight with groups of 32 or more")
            if cfg.variant == 3 and w.group_size % 128:
                raise ValueError("mma variant 3 needs groups of a multiple of 128 rows")
            if cfg.stages > 1:
                flags["num_stages"] = cfg.stages
            w4_mma_kernel[grid](x, w.qweight, w.scales, zeros, perm, out, rows, n, k, cfg.split_k, x.stride(0),
                                rows * n, n, BLOCK_M=cfg.block_m, USE_ASM=cfg.use_asm, VARIANT=cfg.variant, **flags)
        return out

    def dequantize(self, w: Int4Weight, out: torch.Tensor | None = None) -> torch.Tensor:
        """W [K, N] fp16 in the original input order (into ``out`` when given)."""
        from wizardcoder_integrations.engine.kernels.int4 import w4_dequant_kernel

        k, n = w.in_features, w.out_features
        if out is None:
            out = torch.empty((k, n), dtype=torch.float16, device=w.qweight.device)
        block_n = 128 if n % 128 == 0 else 64
        zeros = w.zeros if w.zeros is not None else w.scales
        perm = w.perm if w.perm is not None else w.qweight
        w4_dequant_kernel[(k // 128, n // block_n)](
            w.qweight, w.scales, zeros, perm, out, n, GROUP=w.group_size, BLOCK_N=block_n,
            HAS_PERM=w.perm is not None, HAS_ZEROS=w.zeros is not None, USE_ASM=self.use_asm, num_warps=4)
        return out

    # -- tuning ------------------------------------------------------------------------------------------
    def candidates(self, w: Int4Weight, bucket: int) -> list[LinearConfig]:
        n, k = w.out_features, w.in_features
        blocks = k // 128
        splits = [s for s in (1, 2, 4, 8, 16) if s == 1 or s * 2 <= blocks]
        found = []
        blocks_n = [b for b in (64, 128, 256) if n % b == 0]
        if bucket == 1:
            fast = self.use_asm and dot_ready(w)
            for bn in (b for b in blocks_n if b >= 128):  # one block per iteration, the next one loading
                for warps in (4, 8):
                    found += [LinearConfig("gemv", 1, bn, s, warps, fast) for s in splits]
            for bn, warps in ((64, 4), (128, 4), (256, 8)):  # the tile after next loading: an iteration to arrive
                if bn in blocks_n:
                    found += [LinearConfig("gemv", 1, bn, s, warps, fast, ahead=2) for s in splits if s >= 2]
            for bn, warps, unroll, ahead in UNROLLED:  # several blocks per iteration, a few iterations
                if n % bn == 0:
                    for iters in (1, 2) if ahead == 1 else (2, 4):
                        s = -(-blocks // (unroll * iters))
                        if 2 <= s <= 32:
                            found.append(LinearConfig("gemv", 1, bn, s, warps, fast, unroll=unroll, ahead=ahead))
            for bn in (b for b in blocks_n if b in (128, 256)):  # Triton's pipelining through shared memory
                for stages in (3, 4):
                    found += [LinearConfig("gemv", 1, bn, s, 4, fast, stages=stages) for s in (4, 8) if s in splits]
            if fast and 128 in blocks_n:  # the plain fp32 loop, as a check on the f16x2 one
                found += [LinearConfig("gemv", 1, 128, s, 4, False) for s in splits if s in (2, 8)]
            return found or [self.default_config(w, 1)]
        block_m = min(64, max(16, bucket))
        mma_splits = [s for s in splits if s <= 8]
        if dot_ready(w):
            for bn, warps in ((64, 4), (128, 4), (256, 8)):  # W^T x^T on wgmma: the weight tile is the big side
                if bn in blocks_n:
                    found += [LinearConfig("mma", block_m, bn, s, warps, self.use_asm, 2) for s in mma_splits]
            if w.group_size % 128 == 0:  # one K=128 dot per block
                for bn, warps in ((128, 4), (256, 8)):
                    if bn in blocks_n:
                        found += [LinearConfig("mma", block_m, bn, s, warps, self.use_asm, 3) for s in mma_splits]
            if 128 in blocks_n:  # deeper or shallower load pipelines; K=32 slices as x W
                found += [LinearConfig("mma", block_m, 128, s, 4, self.use_asm, 2, stages=stages)
                          for s in mma_splits for stages in MMA_STAGES]
                found += [LinearConfig("mma", block_m, 128, s, 4, self.use_asm, 1) for s in mma_splits]
        else:
            for bn in (b for b in blocks_n if b <= 128):
                found += [LinearConfig("mma", block_m, bn, s, 4, self.use_asm) for s in mma_splits]
        return found

    def tune(self, samples: list[list[Int4Weight]], buckets: tuple[int, ...] = BUCKETS,
             repeats: int = 3) -> list[dict[str, Any]]:
        """Measure the candidates of every (weight shape, row bucket); keep the fastest correct one.

        Timing replays a CUDA graph of the launches (so Python launch cost stays out of it) that cycles
        through several layers' weights (so the weights come from memory, not from L2). Returns one record
        per shape and bucket for reports.
        """
        report = []
        for group in samples:
            first = group[0]
            dense = first.dequantize(torch.float32)  # [K, N]
            for bucket in buckets:
                if bucket > self.dense_threshold:
                    continue
                gen = torch.Generator(device=dense.device).manual_seed(bucket)
                x = torch.randn((bucket, first.in_features), generator=gen, device=dense.device)
                x = x.to(torch.float16)
                ref = x.float() @ dense
                timings = []
                for cfg in self.candidates(first, bucket):
                    try:
                        out = self.launch(x, first, cfg).sum(0)
                        err = float((out - ref).norm() / ref.norm())
                        if not math.isfinite(err) or err > 2e-3:
                            timings.append((cfg, None, f"wrong result (relative error {err:.2e})"))
                            continue
                        timings.append((cfg, self._time(x, group, cfg, repeats), None))
                    except Exception as e:  # a config that does not compile or launch is skipped
                        timings.append((cfg, None, f"{e.__class__.__name__}: {str(e)[:300]}"))
                ok = [(t, cfg) for cfg, t, _ in timings if t is not None]
                if not ok:
                    errors = "; ".join(sorted({e for _, _, e in timings if e}))[:800]
                    raise RuntimeError(f"no int4 kernel ran correctly for {first.in_features}x{first.out_features} "
                                       f"at {bucket} rows: {errors}")
                split_s = 4 * bucket * first.out_features / SPLIT_READ_BYTES_PER_S  # one split's read, seconds
                best_t, best = min(ok, key=lambda item: item[0] + item[1].split_k * split_s)
                self.configs[_shape_key(first, bucket)] = best
                nbytes = first.qweight.nbytes + first.scales.nbytes
                report.append({"k": first.in_features, "n": first.out_features, "rows": bucket,
                               "best": asdict(best), "best_us": round(best_t * 1e6, 2),
                               "best_weight_tb_s": round(nbytes / best_t / 1e12, 3),
                               "all_us": {_label(c): (None if t is None else round(t * 1e6, 2))
                                          for c, t, _ in timings},
                               "errors": sorted({e for _, _, e in timings if e})[:3]})
            del dense
        return report

    def tune_attention(self, k_cache: torch.Tensor, v_cache: torch.Tensor, heads: int, page: int,
                       splits: dict[int, int], context: int = 512) -> list[dict[str, Any]]:
        """Per batch size: the decode attention's kernel (CUDA or tensor cores), warps, positions per iteration,
        pipelining and splits of each row's positions, whichever is fastest here (on a synthetic block table of
        ``context`` positions per row; every candidate must agree with the CUDA-core kernel at the default
        split). Updates ``splits`` in place."""
        report = []
        d = k_cache.shape[-1]
        pages = k_cache.shape[0] // page
        gen = torch.Generator(device=k_cache.device).manual_seed(0)
        configs = [AttentionConfig(False)] + [
            AttentionConfig(True, warps, int(page * per), stages) for per, warps, stages in ATTENTION_DOT
            if int(page * per) >= 16]
        for rows, default in splits.items():
            per_row = -(-context // page)
            table = torch.randint(1, pages, (rows, per_row), generator=gen, device=k_cache.device,
                                  dtype=torch.int32)
            lengths = torch.full((rows,), context, dtype=torch.int32, device=k_cache.device)
            q = torch.randn((rows, heads, d), generator=gen, device=k_cache.device).to(k_cache.dtype)
            want = self.decode_attention(q, k_cache, v_cache, table, lengths, page, d ** -0.5, default,
                                         AttentionConfig()).float()
            options = sorted({s for s in (default // 2, default, default * 2, default * 4) if 1 <= s <= 16})
            times: dict[str, float | None] = {}
            best: tuple[float, int, AttentionConfig] | None = None
            error = None
            for split, config in itertools.product(options, configs):
                label = _attention_label(split, config)
                run = functools.partial(self.decode_attention, q, k_cache, v_cache, table, lengths, page,
                                        d ** -0.5, split, config)
                try:
                    if not torch.allclose(run().float(), want, atol=2e-2, rtol=2e-2):
                        times[label], error = None, f"{label} disagrees"
                        continue
                    times[label] = t = _graph_time(run, 5)
                except Exception as e:
                    times[label], error = None, f"{label}: {e.__class__.__name__}: {str(e)[:200]}"
                    continue
                if best is None or t < best[0]:
                    best = (t, split, config)
            if best is not None:
                _, splits[rows], self.attention[rows] = best
            chosen = self.attention.get(rows, AttentionConfig())
            report.append({"rows": rows, "default_splits": default, "splits": splits[rows], **asdict(chosen),
                           "best_us": None if best is None else round(best[0] * 1e6, 1),
                           "us": {k: None if v is None else round(v * 1e6, 1) for k, v in times.items()},
                           "error": error})
        return report

    def _time(self, x: torch.Tensor, group: list[Int4Weight], cfg: LinearConfig, repeats: int) -> float:
        out = torch.empty((cfg.split_k, x.shape[0], group[0].out_features), dtype=torch.float32, device=x.device)
        for w in group:  # compile and warm up outside the capture
            self.launch(x, w, cfg, out)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(repeats):
                for w in group:
                    self.launch(x, w, cfg, out)
        graph.replay()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        best = math.inf
        for _ in range(3):
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
        return best / (repeats * len(group))

    # -- the rest of a layer -----------------------------------------------------------------------------
    def add_rmsnorm(self, h: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor,
                    eps: float) -> torch.Tensor:
        from wizardcoder_integrations.engine.kernels.elementwise import add_rmsnorm_kernel

        rows, hidden = h.shape
        out = torch.empty_like(h)
        d = h if delta is None else delta
        splits = 1 if delta is None else delta.shape[0]
        block = triton_next_pow2(hidden)
        if rows * triton_cdiv(hidden, self.norm_block) <= NORM_PROGRAMS:  # few rows: several programs each
            block = min(block, self.norm_block)
        chunks = triton_cdiv(hidden, block)
        counts = self._norm_counts.get(h.device)
        if counts is None:  # one counter per row, growing forever (see the kernel)
            counts = self._norm_counts[h.device] = torch.zeros(NORM_PROGRAMS, dtype=torch.int64, device=h.device)
        part = torch.empty((rows, chunks), dtype=torch.float32, device=h.device) if chunks > 1 else out
        add_rmsnorm_kernel[(chunks, rows)](
            h, d, weight, out, part, counts, hidden, d.stride(0) if delta is not None else 0, hidden, eps,
            S=splits, HAS_DELTA=delta is not None, BLOCK=block, CHUNKS=chunks,
            num_warps=min(16, max(4, block // 512)), **self._pdl(h.device, rows))
        return out

    def rope_write(self, qkv: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor, cos: torch.Tensor,
                   sin: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, heads: int,
                   kv_heads: int) -> torch.Tensor:
        from wizardcoder_integrations.engine.kernels.elementwise import rope_write_kernel

        splits, rows, _ = qkv.shape
        d = k_cache.shape[-1]
        q = torch.empty((rows, heads, d), dtype=k_cache.dtype, device=qkv.device)
        rope_write_kernel[(rows, heads + kv_heads)](
            qkv, positions, slots, cos, sin, q, k_cache, v_cache, qkv.stride(0), qkv.stride(1),
            heads * d, k_cache.stride(0), S=splits, HEADS=heads, KV_HEADS=kv_heads, D=d, num_warps=1,
            **self._pdl(qkv.device, rows))
        return q

    def silu_mul(self, gu: torch.Tensor) -> torch.Tensor:
        from wizardcoder_integrations.engine.kernels.elementwise import silu_mul_kernel

        splits, rows, n = gu.shape
        inter = n // 2
        out = torch.empty((rows, inter), dtype=torch.float16, device=gu.device)
        block = 1024 if rows > 1 else 512
        silu_mul_kernel[(rows, triton_cdiv(inter, block))](gu, out, inter, gu.stride(0), gu.stride(1),
                                                           S=splits, BLOCK=block, num_warps=4,
                                                           **self._pdl(gu.device, rows))
        return out

    def decode_attention(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         block_table: torch.Tensor, lengths: torch.Tensor, page: int, scale: float,
                         splits: int, config: AttentionConfig | None = None) -> torch.Tensor:
        from wizardcoder_integrations.engine.kernels.attention import (
            paged_decode_dot_kernel,
            paged_decode_kernel,
            split_merge_kernel,
        )

        rows, heads, d = q.shape
        if config is None:
            config = self.attention.get(rows, AttentionConfig())
        kernel = paged_decode_dot_kernel if config.dot else paged_decode_kernel
        pdl = self._pdl(q.device, rows)
        flags = {"GROUP": heads // k_cache.shape[1], "D": d, "PAGE": page, "BLOCK_T": config.block_t or page,
                 "STAGES": config.stages, "num_warps": config.warps, **pdl}
        out = torch.empty((rows, heads, d), dtype=q.dtype, device=q.device)
        if splits == 1:
            kernel[(rows, heads, 1)](
                q, k_cache, v_cache, block_table, lengths, out, out, scale, 1, q.stride(0), q.stride(1),
                k_cache.stride(0), block_table.stride(0), out.stride(0), out.stride(1), 0, FINAL=True, **flags)
            return out.view(rows, heads * d)
        part = torch.empty((rows, heads, splits, d), dtype=torch.float32, device=q.device)
        ml = torch.empty((rows, heads, splits, 2), dtype=torch.float32, device=q.device)
        kernel[(rows, heads, splits)](
            q, k_cache, v_cache, block_table, lengths, part, ml, scale, splits, q.stride(0), q.stride(1),
            k_cache.stride(0), block_table.stride(0), part.stride(0), part.stride(1), part.stride(2), FINAL=False,
            **flags)
        split_merge_kernel[(rows, heads)](part, ml, out, splits, part.stride(0), part.stride(1), part.stride(2),
                                          out.stride(0), out.stride(1), D=d, MAX_SPLITS=16, num_warps=4, **pdl)
        return out.view(rows, heads * d)

    def prefill_attention(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                          block_table: torch.Tensor, q_start: torch.Tensor, q_len: torch.Tensor,
                          kv_len: torch.Tensor, page: int, scale: float, max_q: int) -> torch.Tensor:
        """Packed queries q [T, H, D] of rows whose earlier positions are cached: [T, H * D] (zeros where no
        row's query is). ``max_q`` bounds every ``q_len`` (the grid is sized by it)."""
        from wizardcoder_integrations.engine.kernels.attention import paged_prefill_kernel

        total, heads, d = q.shape
        rows = block_table.shape[0]
        block_m = 16 if max_q <= 64 else 32 if max_q <= 512 else 64
        out = torch.zeros((total, heads, d), dtype=q.dtype, device=q.device)
        paged_prefill_kernel[(triton_cdiv(max_q, block_m), heads, rows)](
            q, k_cache, v_cache, block_table, q_start, q_len, kv_len, out, scale, q.stride(0), q.stride(1),
            k_cache.stride(0), block_table.stride(0), out.stride(0), out.stride(1),
            GROUP=heads // k_cache.shape[1], D=d, PAGE=page, BLOCK_M=block_m, num_warps=4)
        return out.view(total, heads * d)


def _graph_time(fn: Any, repeats: int) -> float:
    """Seconds per call of ``fn``, replayed from a CUDA graph (launch cost excluded)."""
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(repeats):
            fn()
    graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = math.inf
    for _ in range(3):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return best / repeats


def _attention_label(splits: int, config: AttentionConfig) -> str:
    return (f"{'dot' if config.dot else 'fma'}-s{splits}-w{config.warps}"
            + (f"-t{config.block_t}" if config.block_t else "") + f"-p{config.stages}")


def _label(cfg: LinearConfig) -> str:
    variant = ("dot" if cfg.use_asm else "f32") if cfg.kind == "gemv" else f"v{cfg.variant}"
    pipe = f"-u{cfg.unroll}-a{cfg.ahead}" if cfg.kind == "gemv" else ""
    pipe += f"-p{cfg.stages}" if cfg.stages > 1 else ""
    return f"{cfg.kind}-{variant}-m{cfg.block_m}-n{cfg.block_n}-s{cfg.split_k}-w{cfg.warps}{pipe}"


def triton_next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)

"""The fast backend: paged static KV cache, per-row positions, int4 kernels, CUDA graphs for decode.

Rows are the scheduler's running requests, in order. Each row holds whole pages of the cache, reserved for
its prompt plus its ``max_new_tokens`` when it joins, so a running row can never run out of cache. Prefix
caching: whole pages of a prompt stay cached after their row leaves, and a later prompt that starts with the
same tokens shares them and prefills only the rest (:mod:`block_pool`). Decode
runs a CUDA graph captured once per batch-size bucket: the graph reads tokens, positions and block tables
from fixed device buffers; rows past the live batch point at the scratch page and are ignored. A follow-up
turn (one row, a short uncached tail after a cached prefix) replays a prefill graph captured per tail size,
so its time to first token is the GPU's work, not hundreds of kernel launches.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from wizardcoder_integrations.engine.backends.base import Backend
from wizardcoder_integrations.engine.backends.llama import CachedPrefix, FastLlama
from wizardcoder_integrations.engine.backends.paged_cache import PagedKVCache
from wizardcoder_integrations.engine.backends.weights import LlamaWeights

__all__ = ["FastBackend"]

PAGE_SIZE = 64
PREFILL_TOKENS = 16384  # most prompt tokens run in one prefill pass
GRAPH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128)
TAIL_BUCKETS = (16, 32, 64, 128)  # uncached prompt tails a captured prefill serves (one row)
KV_MEMORY_FRACTION = 0.85  # of the GPU memory free after weights and workspaces
RESERVED_BYTES = 4 << 30  # prefill activations, graph pools, sampling


class FastBackend(Backend):
    """A GPTQ Llama on its own forward; see the module docstring."""

    name = "fast"

    @torch.no_grad()
    def __init__(self, weights: LlamaWeights, *, max_batch_size: int, context_length: int, ops: Any = None,
                 kv_tokens: int | None = None, use_graphs: bool | None = None, tune: bool = True,
                 prefix_caching: bool = True) -> None:
        from wizardcoder_integrations.engine.backends.torch_ops import TorchOps

        self.device = weights.embed.device
        self.vocab_size = weights.vocab_size
        self.max_batch_size = max_batch_size
        self.context_length = min(context_length, weights.max_positions)
        cuda = self.device.type == "cuda"
        if ops is None:
            if cuda:
                from wizardcoder_integrations.engine.backends.triton_ops import TritonOps

                ops = TritonOps()
            else:
                ops = TorchOps(weights.embed.dtype)
        self.ops = ops
        self.stats: dict[str, Any] = {}
        started = time.perf_counter()
        if tune and hasattr(ops, "tune") and cuda:
            self.stats["tuning"] = ops.tune(_samples(weights), buckets=_linear_buckets(max_batch_size))
        self.stats["tune_s"] = round(time.perf_counter() - started, 2)
        layers, kv_heads, head_dim = len(weights.layers), weights.num_kv_heads, weights.head_dim
        per_token = PagedKVCache.bytes_per_token(layers, kv_heads, head_dim, weights.embed.dtype)
        if kv_tokens is None:
            kv_tokens = max_batch_size * self.context_length
            if cuda:
                torch.cuda.empty_cache()
                free, _ = torch.cuda.mem_get_info(self.device)
                fits = int((free - RESERVED_BYTES) * KV_MEMORY_FRACTION) // per_token
                kv_tokens = min(kv_tokens, fits)
        if kv_tokens < self.context_length // 4:
            raise MemoryError(f"room for only {kv_tokens} KV-cache tokens ({per_token} bytes each)")
        pages = -(-kv_tokens // PAGE_SIZE) + 1
        self.cache = PagedKVCache(layers=layers, kv_heads=kv_heads, head_dim=head_dim, pages=pages,
                                  page_size=PAGE_SIZE, dtype=weights.embed.dtype, device=self.device,
                                  prefix_caching=prefix_caching)
        self.model = FastLlama(weights, self.cache, ops)
        self.buckets = (*(b for b in GRAPH_BUCKETS if b < max_batch_size), max_batch_size)
        max_pages = -(-self.context_length // PAGE_SIZE)
        self.tokens = torch.zeros(max_batch_size, dtype=torch.long, device=self.device)  # [Bmax]
        self.positions = torch.zeros(max_batch_size, dtype=torch.int32, device=self.device)  # [Bmax]
        self.block_table = torch.zeros((max_batch_size, max_pages), dtype=torch.int32, device=self.device)
        self.row_pages: list[list[int]] = []
        self.row_lengths: list[int] = []
        sms = torch.cuda.get_device_properties(self.device).multi_processor_count if cuda else 8
        self.splits = {b: _attention_splits(b, weights.num_heads, sms) for b in self.buckets}
        self.graphs: dict[int, tuple[Any, torch.Tensor]] = {}
        self.tail_graphs: dict[int, tuple[Any, torch.Tensor, torch.Tensor]] = {}
        if tune and hasattr(ops, "tune_attention") and cuda:
            self.cache.k[0].normal_()  # time on data, not zeros (pages are written before any row reads them)
            self.cache.v[0].normal_()
            self.stats["attention"] = ops.tune_attention(self.cache.k[0], self.cache.v[0], weights.num_heads,
                                                         PAGE_SIZE, self.splits)
        started = time.perf_counter()
        if use_graphs if use_graphs is not None else cuda:
            self._capture()
            if prefix_caching:
                self._capture_tails()
        self.stats.update(capture_s=round(time.perf_counter() - started, 2), kv_cache_tokens=kv_tokens,
                          kv_cache_bytes=pages * PAGE_SIZE * per_token, graph_buckets=list(self.graphs),
                          tail_graph_buckets=list(self.tail_graphs))

    # -- Backend ------------------------------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return len(self.row_lengths)

    @property
    def max_budget(self) -> int:
        return min(self.context_length, self.cache.usable_tokens)

    def admissible(self, budgets: list[int]) -> int:
        free = self.cache.free_pages
        for i, budget in enumerate(budgets):
            need = self.cache.pages_for(min(budget, self.context_length))
            if need > free:
                return i
            free -= need
        return len(budgets)

    def prefill(self, prompts: list[list[int]], budgets: list[int]) -> torch.Tensor:
        """Reserve each row's pages, run the prompts in chunks, append the rows: logits [n, V]."""
        logits = []
        start = 0
        while start < len(prompts):
            end, total = start, 0
            while end < len(prompts) and (end == start or total + len(prompts[end]) <= PREFILL_TOKENS):
                total += len(prompts[end])
                end += 1
            logits.append(self._prefill_chunk(prompts[start:end], budgets[start:end]))
            start = end
        return logits[0] if len(logits) == 1 else torch.cat(logits)

    def decode_step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Every running row advances one position: logits [B, V]."""
        rows = self.rows
        self.tokens[:rows].copy_(tokens)
        bucket = next(b for b in self.buckets if b >= rows)
        graph = self.graphs.get(bucket)
        if graph is not None:
            graph[0].replay()
            logits = graph[1][:rows]
        else:
            logits = self._decode_bucket(bucket)[:rows]
        self.positions[:rows] += 1
        self.row_lengths = [n + 1 for n in self.row_lengths]
        return logits

    def keep(self, indices: list[int]) -> None:
        dropped = set(range(self.rows)) - set(indices)
        for i in dropped:
            self.cache.release(self.row_pages[i])
        old = self.rows
        if indices != list(range(len(indices))):
            idx = torch.tensor(indices, device=self.device, dtype=torch.long)
            self.positions[: len(indices)] = self.positions[idx]
            self.block_table[: len(indices)] = self.block_table[idx]
        self.positions[len(indices): old] = 0
        self.block_table[len(indices): old] = 0
        self.row_pages = [self.row_pages[i] for i in indices]
        self.row_lengths = [self.row_lengths[i] for i in indices]

    def close(self) -> None:
        self.graphs.clear()
        self.tail_graphs.clear()

    # -- phases -------------------------------------------------------------------------------------------
    def _prefill_chunk(self, prompts: list[list[int]], budgets: list[int]) -> torch.Tensor:
        if self.rows + len(prompts) > self.max_batch_size:
            raise RuntimeError("more rows than max_batch_size")
        pool = self.cache.pool
        taken: list[tuple[list[int], int]] = []
        try:
            for prompt, budget in zip(prompts, budgets, strict=True):
                taken.append(pool.allocate_prompt(prompt, min(budget, self.context_length)))
        except BaseException:
            for p, _ in taken:
                pool.release(p)
            raise
        pages = [p for p, _ in taken]
        cached = [c for _, c in taken]  # leading positions whose KV a cached prefix already holds
        try:
            logits = self._run_prefill(prompts, pages, cached)
        except BaseException:
            for p in pages:
                pool.release(p)
            raise
        first, dev = self.rows, self.device
        lengths = [len(p) for p in prompts]
        for j, (p, n) in enumerate(zip(pages, lengths, strict=True)):
            self.positions[first + j] = n
            self.block_table[first + j, : len(p)] = torch.tensor(p, dtype=torch.int32, device=dev)
            pool.commit(p, prompts[j])
        self.row_pages += pages
        self.row_lengths += lengths
        return logits

    def _run_prefill(self, prompts: list[list[int]], pages: list[list[int]], cached: list[int]) -> torch.Tensor:
        """Write the prompts' uncached positions into their pages; each row's last logits [n, V]."""
        page, dev = PAGE_SIZE, self.device
        lengths = [len(p) for p in prompts]
        new = [n - c for n, c in zip(lengths, cached, strict=True)]
        if len(prompts) == 1 and cached[0]:  # a follow-up turn: replay the captured prefill of its tail size
            bucket = next((b for b in self.tail_graphs if b >= new[0]), None)
            if bucket is not None:
                return self._replay_tail(bucket, prompts[0], pages[0], cached[0])
        slots = torch.cat([torch.tensor(p, dtype=torch.long)[torch.arange(c, n) // page] * page
                           + torch.arange(c, n) % page for p, c, n in zip(pages, cached, lengths, strict=True)])
        tokens = torch.tensor([t for p, c in zip(prompts, cached, strict=True) for t in p[c:]], dtype=torch.long)
        positions = torch.cat([torch.arange(c, n, dtype=torch.int32) for c, n in zip(cached, lengths, strict=True)])
        rows: list[int] | CachedPrefix = lengths
        if any(cached):
            table = torch.zeros((len(prompts), max(map(len, pages))), dtype=torch.int32)
            for r, p in enumerate(pages):
                table[r, : len(p)] = torch.tensor(p, dtype=torch.int32)
            q_len = torch.tensor(new, dtype=torch.int32)
            ends = q_len.cumsum(0)
            rows = CachedPrefix(block_table=table.to(dev), q_start=(ends - q_len).to(torch.int32).to(dev),
                                q_len=q_len.to(dev), kv_len=torch.tensor(lengths, dtype=torch.int32).to(dev),
                                last=(ends - 1).to(dev), max_q=max(new))
        return self.model.prefill(tokens.to(dev), positions.to(dev), slots.to(dev), rows)

    def _replay_tail(self, bucket: int, prompt: list[int], pages: list[int], cached: int) -> torch.Tensor:
        """One row's uncached tail through the CUDA graph captured for ``bucket`` new tokens."""
        graph, meta, out = self.tail_graphs[bucket]
        meta.copy_(self._tail_meta(bucket, meta.shape[0], prompt, pages, cached))
        graph.replay()
        return out.clone()

    @staticmethod
    def _tail_meta(bucket: int, size: int, prompt: list[int], pages: list[int], cached: int) -> torch.Tensor:
        """The inputs of :meth:`_tail_forward` in one int32 vector: tokens, positions and slots [bucket] each
        (padding: token 0 at position 0, written to the scratch page's slot 0), the block table, then
        q_start, q_len, kv_len and the last token's index."""
        n, tail, page = len(prompt), len(prompt) - cached, PAGE_SIZE
        host = torch.zeros(size, dtype=torch.int32)
        positions = torch.arange(cached, n, dtype=torch.int32)
        table = torch.tensor(pages, dtype=torch.int32)
        host[:tail] = torch.tensor(prompt[cached:], dtype=torch.int32)
        host[bucket: bucket + tail] = positions
        host[2 * bucket: 2 * bucket + tail] = table[positions // page] * page + positions % page
        host[3 * bucket: 3 * bucket + len(pages)] = table
        host[size - 4:] = torch.tensor([0, tail, n, tail - 1], dtype=torch.int32)
        return host

    def _tail_forward(self, meta: torch.Tensor, bucket: int) -> torch.Tensor:
        """The prefill of one row's ``bucket`` new tokens, all inputs read from ``meta`` (see _replay_tail)."""
        end = meta.shape[0] - 4
        rows = CachedPrefix(block_table=meta[3 * bucket: end].view(1, -1), q_start=meta[end: end + 1],
                            q_len=meta[end + 1: end + 2], kv_len=meta[end + 2: end + 3],
                            last=meta[end + 3: end + 4].long(), max_q=bucket)
        return self.model.prefill(meta[:bucket].long(), meta[bucket: 2 * bucket],
                                  meta[2 * bucket: 3 * bucket].long(), rows)

    def _capture_tails(self) -> None:
        """CUDA graphs for one row's prefill after a cached prefix, per tail size (their own memory pool:
        a tail's logits must survive the next decode replay)."""
        max_pages = self.block_table.shape[1]
        side = torch.cuda.Stream(self.device)
        pool = None
        for bucket in TAIL_BUCKETS:
            if bucket > getattr(self.ops, "dense_threshold", 0):
                break
            meta = torch.zeros(3 * bucket + max_pages + 4, dtype=torch.int32, device=self.device)
            meta[-3:-1] = bucket  # q_len = kv_len = bucket: a valid row on the scratch page while capturing
            meta[-1] = bucket - 1
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self._tail_forward(meta, bucket)  # compile every kernel variant before capturing
            torch.cuda.current_stream(self.device).wait_stream(side)
            torch.cuda.synchronize(self.device)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                out = self._tail_forward(meta, bucket)
            pool = graph.pool()
            self.tail_graphs[bucket] = (graph, meta, out)
        torch.cuda.synchronize(self.device)

    def cache_stats(self) -> dict[str, Any]:
        pool = self.cache.pool
        return {"prefix_caching": pool.prefix_caching, "prefix_queried_tokens": pool.stats.queried_tokens,
                "prefix_hit_tokens": pool.stats.hit_tokens, "prefix_hit_rate": round(pool.stats.hit_rate, 4),
                "prefix_cached_pages": pool.cached_pages,
                "prefix_cached_bytes": pool.cached_pages * self.cache.bytes_per_page,
                "prefix_evicted_pages": pool.stats.evicted_pages,
                "kv_free_pages": pool.free_pages, "kv_pages": self.cache.pages - 1, "kv_page_tokens": PAGE_SIZE}

    def _decode_bucket(self, bucket: int) -> torch.Tensor:
        return self.model.decode_step(self.tokens[:bucket], self.positions[:bucket], self.block_table[:bucket],
                                      self.splits[bucket])

    def _capture(self) -> None:
        """One CUDA graph per bucket, largest first, sharing one memory pool (they never run at once)."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for bucket in reversed(self.buckets):  # compile every kernel variant before capturing
                self._decode_bucket(bucket)
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)
        pool = None
        for bucket in reversed(self.buckets):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                out = self._decode_bucket(bucket)
            pool = graph.pool()
            self.graphs[bucket] = (graph, out)
        torch.cuda.synchronize(self.device)


def _samples(weights: LlamaWeights, layers: int = 8) -> list[list[Any]]:
    """Per linear shape, that linear from up to ``layers`` layers (tuning reads them in turn)."""
    picked = weights.layers[:layers]
    return [[getattr(layer, name) for layer in picked] for name in ("qkv", "o", "gate_up", "down")]


def _linear_buckets(max_batch_size: int) -> tuple[int, ...]:
    from wizardcoder_integrations.engine.backends.triton_ops import BUCKETS

    rows = [b for b in BUCKETS if b < max_batch_size] + [min(b for b in BUCKETS if b >= max_batch_size)]
    if max_batch_size > BUCKETS[-1]:
        rows = list(BUCKETS)
    return tuple(sorted(set(rows) | {BUCKETS[-1]}))  # prefill chunks up to the dense threshold use the last


def _attention_splits(rows: int, heads: int, sms: int) -> int:
    """Split each row's pages so rows * heads * splits programs fill the GPU twice over."""
    splits = 1
    while rows * heads * splits < 2 * sms and splits < 16:
        splits *= 2
    return splits

"""A paged KV cache allocated once: fixed-size pages handed to rows and taken back when they finish."""

from __future__ import annotations

import torch

__all__ = ["PagedKVCache"]


class PagedKVCache:
    """Per layer, K and V are ``[pages * page_size, kv_heads, head_dim]``; page 0 is scratch for padding rows.

    A row's position ``p`` lives at slot ``pages_of_row[p // page_size] * page_size + p % page_size``.
    """

    def __init__(self, *, layers: int, kv_heads: int, head_dim: int, pages: int, page_size: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        if pages < 2:
            raise ValueError("the KV cache needs at least two pages (one is scratch)")
        self.page_size = page_size
        self.pages = pages
        shape = (pages * page_size, kv_heads, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self._free = list(range(pages - 1, 0, -1))

    @staticmethod
    def bytes_per_token(layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype) -> int:
        return 2 * layers * kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()

    def pages_for(self, tokens: int) -> int:
        return -(-tokens // self.page_size)

    @property
    def free_pages(self) -> int:
        return len(self._free)

    @property
    def usable_tokens(self) -> int:
        """The most tokens one row could hold (every page but the scratch one)."""
        return (self.pages - 1) * self.page_size

    def allocate(self, tokens: int) -> list[int]:
        n = self.pages_for(tokens)
        if n > len(self._free):
            raise RuntimeError(f"KV cache full: {tokens} tokens need {n} pages, {len(self._free)} free")
        pages = self._free[-n:]
        del self._free[-n:]
        return pages[::-1]

    def release(self, pages: list[int]) -> None:
        self._free.extend(pages)

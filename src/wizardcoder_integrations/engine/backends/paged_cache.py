"""A paged KV cache allocated once: fixed-size pages handed to rows and taken back when they finish."""

from __future__ import annotations

import torch

from wizardcoder_integrations.engine.backends.block_pool import BlockPool

__all__ = ["PagedKVCache"]


class PagedKVCache:
    """Per layer, K and V are ``[pages * page_size, kv_heads, head_dim]``; page 0 is scratch for padding rows.

    A row's position ``p`` lives at slot ``pages_of_row[p // page_size] * page_size + p % page_size``.
    ``pool`` says which pages are free, held or caching a prompt prefix (see :mod:`block_pool`).
    """

    def __init__(self, *, layers: int, kv_heads: int, head_dim: int, pages: int, page_size: int,
                 dtype: torch.dtype, device: torch.device, prefix_caching: bool = True) -> None:
        self.page_size = page_size
        self.pages = pages
        self.pool = BlockPool(pages, page_size, prefix_caching=prefix_caching)
        shape = (pages * page_size, kv_heads, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.bytes_per_page = page_size * self.bytes_per_token(layers, kv_heads, head_dim, dtype)

    @staticmethod
    def bytes_per_token(layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype) -> int:
        return 2 * layers * kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()

    def pages_for(self, tokens: int) -> int:
        return self.pool.pages_for(tokens)

    @property
    def free_pages(self) -> int:
        return self.pool.free_pages

    @property
    def usable_tokens(self) -> int:
        """The most tokens one row could hold (every page but the scratch one)."""
        return (self.pages - 1) * self.page_size

    def allocate(self, tokens: int) -> list[int]:
        return self.pool.allocate(tokens)

    def release(self, pages: list[int]) -> None:
        self.pool.release(pages)

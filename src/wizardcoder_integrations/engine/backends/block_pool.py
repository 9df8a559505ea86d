"""Which KV-cache pages are free, which rows hold them, and which hold a known prompt prefix (prefix caching).

A full page of prompt tokens is identified by a chained hash: the hash of the page before it and the page's
own tokens, so equal hashes mean equal whole prefixes (each hit is also checked against the stored tokens,
so a hash collision is a miss, never wrong KV). Rows share such pages by reference count; a page whose last
row left stays cached, and is evicted least recently used first when a row needs a page and none is free.
Plain Python, no tensors: the same object runs under the CUDA backend and in CPU unit tests. One thread
(the scheduler's) uses it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BlockPool", "PrefixStats"]


@dataclass
class PrefixStats:
    """Prefix-cache counters since the pool was made."""

    queried_tokens: int = 0  # prompt tokens looked up
    hit_tokens: int = 0  # of them, found cached (their prefill was skipped)
    evicted_pages: int = 0

    @property
    def hit_rate(self) -> float:
        return self.hit_tokens / self.queried_tokens if self.queried_tokens else 0.0


class BlockPool:
    """Pages ``1 .. pages - 1`` of a paged cache (page 0 is scratch), ``page_size`` tokens each."""

    def __init__(self, pages: int, page_size: int, *, prefix_caching: bool = True) -> None:
        if pages < 2:
            raise ValueError("the KV cache needs at least two pages (one is scratch)")
        self.pages = pages
        self.page_size = page_size
        self.prefix_caching = prefix_caching
        self.stats = PrefixStats()
        self._free = list(range(pages - 1, 0, -1))  # never held, or holding nothing worth keeping
        self._refs = [0] * pages
        self._evictable: OrderedDict[int, None] = OrderedDict()  # cached, no row holds them; oldest first
        self._key: dict[int, tuple[int, int, tuple[int, ...]]] = {}  # page -> (hash, parent hash, tokens)
        self._page_of: dict[int, int] = {}  # hash -> page

    # -- capacity -------------------------------------------------------------------------------------
    def pages_for(self, tokens: int) -> int:
        return -(-tokens // self.page_size)

    @property
    def free_pages(self) -> int:
        """Pages a new row can take now (free, or cached and held by no row)."""
        return len(self._free) + len(self._evictable)

    @property
    def cached_pages(self) -> int:
        """Pages holding a known prompt prefix (held by rows or not)."""
        return len(self._key)

    # -- rows -----------------------------------------------------------------------------------------
    def allocate(self, tokens: int) -> list[int]:
        """Fresh pages for ``tokens`` positions (no prefix reuse)."""
        return self._take(self.pages_for(tokens))

    def allocate_prompt(self, prompt: Sequence[int], budget: int) -> tuple[list[int], int]:
        """Pages for a row of ``budget`` positions starting with ``prompt``: (pages, cached tokens).

        The first ``cached`` positions (whole pages, at most ``len(prompt) - 1`` so the last prompt token
        is always computed) are shared pages already holding this prefix's KV; the rest are fresh.
        """
        hits = self.match(prompt)
        self.stats.queried_tokens += len(prompt)
        need = self.pages_for(budget) - len(hits)
        if need > len(self._free) + len(self._evictable) - sum(1 for p in hits if p in self._evictable):
            raise RuntimeError(f"KV cache full: {budget} tokens need {need} more pages, {self.free_pages} free")
        for page in hits:
            self._hold(page)
        fresh = self._take(need)
        self.stats.hit_tokens += len(hits) * self.page_size
        return hits + fresh, len(hits) * self.page_size

    def match(self, prompt: Sequence[int]) -> list[int]:
        """The cached pages holding ``prompt``'s longest cached prefix of whole pages (none are taken)."""
        if not self.prefix_caching:
            return []
        hits: list[int] = []
        parent = 0
        for i in range((len(prompt) - 1) // self.page_size):
            block = tuple(prompt[i * self.page_size: (i + 1) * self.page_size])
            h = hash((parent, block))
            page = self._page_of.get(h)
            if page is None or self._key[page] != (h, parent, block):
                break
            hits.append(page)
            parent = h
        return hits

    def commit(self, pages: Sequence[int], prompt: Sequence[int]) -> None:
        """Record that ``pages`` (a row's, in order) now hold ``prompt``'s KV: its whole pages become cached."""
        if not self.prefix_caching:
            return
        parent = 0
        for i in range(len(prompt) // self.page_size):
            block = tuple(prompt[i * self.page_size: (i + 1) * self.page_size])
            h = hash((parent, block))
            page = pages[i]
            known = self._page_of.get(h)
            if known is None and page not in self._key:
                self._page_of[h] = page
                self._key[page] = (h, parent, block)
            elif known != page:
                return  # another page holds this prefix (rows prefilled together): later pages stay private
            parent = h

    def release(self, pages: Sequence[int]) -> None:
        """A row leaves: its pages lose a holder; unheld cached pages wait for reuse, others are free.

        Later pages are released first, so a prefix's tail is evicted before its head.
        """
        for page in reversed(pages):
            self._refs[page] -= 1
            if self._refs[page] > 0:
                continue
            if page in self._key:
                self._evictable[page] = None
            else:
                self._free.append(page)

    def clear(self) -> None:
        """Forget every cached prefix (pages held by rows stay theirs)."""
        for page in list(self._evictable):
            self._forget(page)
            self._free.append(page)
        self._evictable.clear()
        for page in list(self._key):
            self._forget(page)

    # -- internals ------------------------------------------------------------------------------------
    def _hold(self, page: int) -> None:
        if self._refs[page] == 0:
            self._evictable.pop(page, None)
        self._refs[page] += 1

    def _take(self, n: int) -> list[int]:
        if n > self.free_pages:
            raise RuntimeError(f"KV cache full: {n} pages needed, {self.free_pages} free")
        taken = []
        for _ in range(n):
            if self._free:
                page = self._free.pop()
            else:
                page, _ = self._evictable.popitem(last=False)  # least recently released first
                self._forget(page)
                self.stats.evicted_pages += 1
            self._refs[page] = 1
            taken.append(page)
        return taken

    def _forget(self, page: int) -> None:
        h, _, _ = self._key.pop(page)
        if self._page_of.get(h) == page:
            del self._page_of[h]

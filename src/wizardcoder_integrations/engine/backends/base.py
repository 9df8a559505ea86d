"""What the scheduler needs from a model runtime: rows join by ``prefill``, advance by ``decode_step``, leave by
``keep``. Row ``i`` of every call is the scheduler's running request ``i``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

__all__ = ["Backend"]


class Backend(ABC):
    """A batch of sequences with their KV cache, advanced one token at a time."""

    name: str
    device: torch.device
    vocab_size: int

    @abstractmethod
    def prefill(self, prompts: list[list[int]], budgets: list[int]) -> torch.Tensor:
        """Append one row per prompt; return the logits of each prompt's last position: [n, V].

        ``budgets[i]`` is the most positions row ``i`` will ever hold (prompt plus new tokens).
        """

    @abstractmethod
    def decode_step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed each running row its next token (``tokens`` [B] int64 on the device): logits [B, V]."""

    @abstractmethod
    def keep(self, indices: list[int]) -> None:
        """Keep only rows ``indices`` (in that order) and free the others' cache."""

    def admissible(self, budgets: list[int]) -> int:
        """How many of these waiting requests (from the front) fit in the cache now."""
        return len(budgets)

    @property
    def max_budget(self) -> int | None:
        """The largest budget one row can ever get (None: no fixed limit)."""
        return None

    def cache_stats(self) -> dict[str, Any]:
        """Figures of the KV cache (prefix-cache hits, cached memory); empty where the backend keeps none."""
        return {}

    def close(self) -> None:  # noqa: B027 (optional hook: most backends hold nothing extra)
        """Release device memory held outside the rows (graphs, workspaces)."""

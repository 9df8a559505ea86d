"""The eager backend: a transformers model with a ``DynamicCache`` that rows join (left-padded) and leave.

Works for any causal LM on any device; the fast path falls back to it.
"""

from __future__ import annotations

from typing import Any

import torch

from wizardcoder_integrations.engine.backends.base import Backend

__all__ = ["EagerBackend"]


class EagerBackend(Backend):
    """Rows share one left-padded KV cache; ``mask`` [B, T] marks real (1) vs padding (0) positions."""

    name = "eager"

    def __init__(self, model: Any, pad_token_id: int) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.device = next(model.parameters()).device
        head = model.get_output_embeddings()
        self.vocab_size = int(head.weight.shape[0]) if hasattr(head, "weight") else int(model.config.vocab_size)
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # [B, T] long
        self.rows = 0

    def prefill(self, prompts: list[list[int]], budgets: list[int]) -> torch.Tensor:
        """Run the prompts (left-padded together) and merge them into the running cache: logits [n, V]."""
        from transformers import DynamicCache

        longest = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), longest), self.pad_token_id, dtype=torch.long)  # [n, L]
        mask = torch.zeros((len(prompts), longest), dtype=torch.long)  # [n, L]
        for i, p in enumerate(prompts):
            ids[i, longest - len(p):] = torch.tensor(p)
            mask[i, longest - len(p):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [n, L]
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        self._merge(out.past_key_values, mask)
        return out.logits[:, -1, :]

    def decode_step(self, tokens: torch.Tensor) -> torch.Tensor:
        """One token for every running row: logits [B, V]."""
        assert self.mask is not None
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)  # [B, T+1]
        positions = self.mask.sum(-1, keepdim=True) - 1  # [B, 1]
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask, position_ids=positions,
                         past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return out.logits[:, -1, :]

    def keep(self, indices: list[int]) -> None:
        """Keep only rows ``indices``, and drop leading cache columns that are padding in every row."""
        if not indices:
            self.cache, self.mask, self.rows = None, None, 0
            return
        assert self.mask is not None
        idx = torch.tensor(indices, device=self.device)
        mask = self.mask[idx]
        start = int((mask.sum(0) > 0).nonzero()[0])  # first column any row uses
        for layer in self.cache.layers:
            layer.keys = layer.keys[idx, :, start:]
            layer.values = layer.values[idx, :, start:]
        self.mask = mask[:, start:]
        self.rows = len(indices)

    def _merge(self, cache: Any, mask: torch.Tensor) -> None:
        if self.rows == 0:
            self.cache, self.mask, self.rows = cache, mask, mask.shape[0]
            return
        assert self.mask is not None
        width = max(self.mask.shape[1], mask.shape[1])
        for old_layer, new_layer in zip(self.cache.layers, cache.layers, strict=True):
            for name in ("keys", "values"):
                merged = torch.cat([_left_pad(getattr(old_layer, name), width, dim=2),
                                    _left_pad(getattr(new_layer, name), width, dim=2)], dim=0)
                setattr(old_layer, name, merged)
        self.mask = torch.cat([_left_pad(self.mask, width, dim=1), _left_pad(mask, width, dim=1)], dim=0)
        self.rows += mask.shape[0]


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=dim)

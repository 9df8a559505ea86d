"""Next-token choice for a batch whose rows each have their own sampling settings.

The order matches transformers' ``generate``: repetition penalty, then temperature, top-k, top-p.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from wizardcoder_integrations.engine.params import SamplingParams

__all__ = ["apply_repetition_penalty", "choose_next_tokens"]


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """CTRL penalty: logits [B, V] of tokens marked in ``seen`` [B, V] shrink by ``penalty`` [B]."""
    penalty = penalty[:, None]
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def _filter_top_k_top_p(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Mask logits [B, V] outside each row's top-k and nucleus (top_k [B] int, 0 = off; top_p [B])."""
    vocab = logits.shape[-1]
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)  # [B, V]
    rank = torch.arange(vocab, device=logits.device)[None, :]
    k = torch.where(top_k > 0, top_k.clamp(max=vocab), torch.full_like(top_k, vocab))
    drop = rank >= k[:, None]
    probs = torch.softmax(sorted_logits.masked_fill(drop, float("-inf")), dim=-1)
    # keep a token while the mass before it is below top_p (the first token always stays)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    drop |= mass_before >= top_p[:, None]
    drop[:, 0] = False
    mask = torch.zeros_like(drop).scatter(-1, sorted_idx, drop)
    return logits.masked_fill(mask, float("-inf"))


def choose_next_tokens(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    seen: torch.Tensor,
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """The next token of every row: logits [B, V] (any float dtype) -> token ids [B] (int64)."""
    logits = logits.float()
    device = logits.device
    penalty = torch.tensor([p.repetition_penalty for p in params], device=device)
    if bool((penalty != 1.0).any()):
        logits = apply_repetition_penalty(logits, seen, penalty)
    tokens = torch.argmax(logits, dim=-1)
    sampled = [i for i, p in enumerate(params) if not p.greedy]
    if not sampled:
        return tokens
    rows = torch.tensor(sampled, device=device)
    temperature = torch.tensor([params[i].temperature for i in sampled], device=device)
    top_k = torch.tensor([params[i].top_k for i in sampled], device=device)
    top_p = torch.tensor([params[i].top_p for i in sampled], device=device)
    scaled = _filter_top_k_top_p(logits[rows] / temperature[:, None], top_k, top_p)
    probs = torch.softmax(scaled, dim=-1)
    for j, i in enumerate(sampled):
        tokens[i] = torch.multinomial(probs[j], 1, generator=generators[i])[0]
    return tokens

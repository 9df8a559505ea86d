"""Next-token choice for a whole batch on the device, every row with its own settings, without per-row loops.

The logits go through, in this order (vLLM's): the logit bias, the repetition penalty (tokens of the prompt and
the output, CTRL-style), the presence and frequency penalties (generated tokens only, OpenAI semantics) and the
grammar mask. These *processed* logits give greedy rows their token and every row its log-probabilities.
Sampled rows then divide by their temperature, keep their top-k and then their top-p set, and draw with the
Gumbel-max trick: ``argmax(logits / T + g)``, where ``g`` is Gumbel noise made from a counter-based hash of
(seed, step, token id) with integer tensor ops. A row's draw thus depends only on its seed, its position and its
own logits, never on the rows batched with it, and no random-generator state is kept per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from wizardcoder_integrations.engine.params import SamplingParams

__all__ = ["BatchSettings", "Sampled", "apply_repetition_penalty", "row_keys", "sample", "uniform_noise"]

TOPK_SLICE_LIMIT = 1024  # when every sampled row keeps at most this many tokens, filter a top-k slice, not a sort
_M32 = 0xFFFFFFFF


@dataclass(frozen=True)
class BatchSettings:
    """Every row's sampling settings as device tensors; build once per batch composition."""

    greedy: torch.Tensor  # [B] bool
    all_greedy: bool
    temperature: torch.Tensor  # [B] float32 (1 for greedy rows)
    top_k: torch.Tensor  # [B] int64, 0 keeps all
    top_p: torch.Tensor  # [B] float32
    slice_k: int  # > 0: every sampled row keeps at most this many tokens (filter on a top-k slice)
    repetition: torch.Tensor | None  # [B] float32; None when no row has a penalty
    presence: torch.Tensor | None  # [B] float32; None when no row has presence or frequency penalties
    frequency: torch.Tensor | None  # [B] float32
    bias: torch.Tensor | None  # [B, V] float32; None when no row has a logit bias
    seeds: tuple[int, ...]  # one per row (host values: with each row's step they give its noise key)
    logprobs: int | None  # the most alternatives any row asked for; None when no row asks

    @classmethod
    def build(cls, params: Sequence[SamplingParams], seeds: Sequence[int], vocab_size: int,
              device: torch.device) -> BatchSettings:
        """Settings of rows ``params`` (seeds: one integer per row, any size; it is reduced to 64 bits)."""

        def values(xs: Sequence[float | int], dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(list(xs), dtype=dtype).to(device, non_blocking=True)

        greedy = [p.greedy for p in params]
        sampled = [p for p in params if not p.greedy]
        slice_k = max((p.top_k for p in sampled), default=0)
        if any(p.top_k == 0 for p in sampled) or slice_k > TOPK_SLICE_LIMIT:
            slice_k = 0
        bias = None
        if any(p.logit_bias for p in params):
            rows = [i for i, p in enumerate(params) for _ in p.logit_bias]
            ids = [t for p in params for t, _ in p.logit_bias]
            amounts = [b for p in params for _, b in p.logit_bias]
            bias = torch.zeros((len(params), vocab_size), dtype=torch.float32)
            bias[rows, ids] = torch.tensor(amounts, dtype=torch.float32)
            bias = bias.to(device, non_blocking=True)
        penalised = any(p.presence_penalty or p.frequency_penalty for p in params)
        asked = [p.logprobs for p in params if p.logprobs is not None]
        return cls(
            greedy=values(greedy, torch.bool),
            all_greedy=all(greedy),
            temperature=values([1.0 if g else p.temperature for g, p in zip(greedy, params, strict=True)],
                               torch.float32),
            top_k=values([p.top_k for p in params], torch.long),
            top_p=values([p.top_p for p in params], torch.float32),
            slice_k=slice_k,
            repetition=(values([p.repetition_penalty for p in params], torch.float32)
                        if any(p.repetition_penalty != 1.0 for p in params) else None),
            presence=values([p.presence_penalty for p in params], torch.float32) if penalised else None,
            frequency=values([p.frequency_penalty for p in params], torch.float32) if penalised else None,
            bias=bias,
            seeds=tuple(seeds),
            logprobs=max(asked) if asked else None,
        )


@dataclass(frozen=True)
class Sampled:
    """One step's choices: tokens [B] int64, and when asked, their logprobs [B] and the top [B, n] ids/logprobs."""

    tokens: torch.Tensor
    logprob: torch.Tensor | None = None
    top_ids: torch.Tensor | None = None
    top_logprobs: torch.Tensor | None = None


def sample(logits: torch.Tensor, settings: BatchSettings, *, seen: torch.Tensor, counts: torch.Tensor,
           steps: Sequence[int], allowed: torch.Tensor | None = None) -> Sampled:
    """The next token of every row.

    logits [B, V] (any float dtype, not modified); seen [B, V] bool: tokens of each row's prompt and output;
    counts [B, V] int: how often each token was generated; steps: each row's count of tokens generated so far
    (the index of the token being chosen); allowed [B, V] bool: the grammar mask (None: no row is constrained).
    """
    processed = process_logits(logits, settings, seen=seen, counts=counts, allowed=allowed)
    tokens = torch.argmax(processed, dim=-1)
    if not settings.all_greedy:
        keys = torch.tensor(row_keys(settings.seeds, steps), dtype=torch.long).to(logits.device, non_blocking=True)
        tokens = torch.where(settings.greedy, tokens, _draw(processed, settings, keys))
    if settings.logprobs is None:
        return Sampled(tokens)
    logprobs = torch.log_softmax(processed, dim=-1)
    chosen = logprobs.gather(1, tokens[:, None])[:, 0]
    if settings.logprobs == 0:
        return Sampled(tokens, chosen)
    top_logprobs, top_ids = torch.topk(logprobs, settings.logprobs, dim=-1)
    return Sampled(tokens, chosen, top_ids, top_logprobs)


def process_logits(logits: torch.Tensor, settings: BatchSettings, *, seen: torch.Tensor, counts: torch.Tensor,
                   allowed: torch.Tensor | None) -> torch.Tensor:
    """Logit bias, penalties and grammar mask: logits [B, V] -> float32 [B, V] (``logits`` is never written)."""
    out = logits.float()
    if settings.bias is not None:
        out = out + settings.bias
    if settings.repetition is not None:
        out = apply_repetition_penalty(out, seen, settings.repetition)
    if settings.presence is not None and settings.frequency is not None:
        generated = counts.float()
        out = out - generated * settings.frequency[:, None] - (generated > 0) * settings.presence[:, None]
    if allowed is not None:
        out = out.masked_fill(~allowed, float("-inf"))
    return out


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """CTRL penalty: logits [B, V] of tokens marked in ``seen`` [B, V] shrink by ``penalty`` [B]."""
    penalty = penalty[:, None]
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def _draw(processed: torch.Tensor, settings: BatchSettings, keys: torch.Tensor) -> torch.Tensor:
    """Gumbel-max draw over each row's temperature-scaled top-k / top-p set: token ids [B]."""
    scaled = processed / settings.temperature[:, None]
    if settings.slice_k:
        values, ids = torch.topk(scaled, min(settings.slice_k, scaled.shape[-1]), dim=-1)  # [B, K], descending
    else:
        values, ids = torch.sort(scaled, dim=-1, descending=True)  # [B, V]
    values = _filter_sorted(values, settings.top_k, settings.top_p)
    noise = uniform_noise(keys, ids)
    gumbel = -torch.log(-torch.log(noise))
    pick = torch.argmax(values + gumbel, dim=-1)
    return ids.gather(1, pick[:, None])[:, 0]


def _filter_sorted(values: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Mask sorted (descending) logits [B, K] past each row's top-k, then past its nucleus of mass top_p."""
    width = values.shape[-1]
    rank = torch.arange(width, device=values.device)[None, :]
    k = torch.where(top_k > 0, top_k.clamp(max=width), torch.full_like(top_k, width))
    drop = rank >= k[:, None]
    probs = torch.softmax(values.masked_fill(drop, float("-inf")), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # a token stays while the mass before it is below top_p
    drop |= mass_before >= top_p[:, None]
    drop[:, 0] = False
    return values.masked_fill(drop, float("-inf"))


def row_keys(seeds: Sequence[int], steps: Sequence[int]) -> list[int]:
    """Each row's noise key for this step: a hash of (seed, step), computed on the host (a few integer ops per
    row, where the same on the device would be dozens of tiny kernel launches)."""
    keys = []
    for seed, step in zip(seeds, steps, strict=True):
        seed &= (1 << 64) - 1
        keys.append(_mix32_int((seed & _M32) ^ _mix32_int((seed >> 32) ^ _mix32_int(step & _M32))))
    return keys


def uniform_noise(keys: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Uniform floats in (0, 1) [B, K], a pure function of (row keys [B], token ids [B, K]).

    Integer ops only, on 32-bit values held in int64 (products stay below 2**49), so CPU and GPU agree.
    """
    bits = _mix32((ids & _M32) ^ keys[:, None])
    return ((bits >> 8).float() + 0.5) * (1.0 / (1 << 24))


def _mix32_int(x: int) -> int:
    """:func:`_mix32` on one Python integer in [0, 2**32)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash with full avalanche (lowbias32) of int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32), without overflowing int64."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _M32

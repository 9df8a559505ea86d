"""What generation returns: whole results and stream events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FinishReason", "GenerationResult", "StreamDelta", "TokenLogprob"]

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's natural-log probability and the ``top`` most likely tokens at its position.

    The distribution is the model's next-token distribution after the repetition, presence and frequency
    penalties, the logit bias and the grammar mask, before temperature, top-k and top-p (so greedy and sampled
    requests report the same numbers for the same position). ``top`` holds (token id, logprob) pairs, most
    likely first; it may or may not contain ``token_id``.
    """

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class StreamDelta:
    """New text of a streamed completion; ``token_ids`` are the tokens generated since the last delta.

    ``logprobs`` (when the request asked for them) is aligned with ``token_ids``.
    """

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class GenerationResult:
    """One finished completion.

    ``completion_tokens`` counts every token the model generated, the end-of-sequence token included;
    ``text`` never contains the prompt, the EOS token or a stop string. ``logprobs`` is set when the request
    asked for them (``SamplingParams.logprobs``), one per token of ``token_ids``.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    token_ids: tuple[int, ...]
    stop_sequence: str | None
    time_to_first_token_s: float
    total_s: float
    logprobs: tuple[TokenLogprob, ...] | None = None
    """Every generated token's :class:`TokenLogprob` (aligned with ``token_ids``), when the request asked."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.total_s - self.time_to_first_token_s
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 and self.completion_tokens > 1 else 0.0

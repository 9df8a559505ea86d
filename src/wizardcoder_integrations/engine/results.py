"""What generation returns: whole results and stream events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FinishReason", "GenerationResult", "StreamDelta"]

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class StreamDelta:
    """New text of a streamed completion; ``token_ids`` are the tokens generated since the last delta."""

    text: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class GenerationResult:
    """One finished completion.

    ``completion_tokens`` counts every token the model generated, the end-of-sequence token included;
    ``text`` never contains the prompt, the EOS token or a stop string.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    token_ids: tuple[int, ...]
    stop_sequence: str | None
    time_to_first_token_s: float
    total_s: float

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.total_s - self.time_to_first_token_s
        return (self.completion_tokens - 1) / decode_s if decode_s > 0 and self.completion_tokens > 1 else 0.0

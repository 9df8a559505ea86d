"""Token texts for OpenAI's ``logprobs`` objects, and a cheap bound that refuses surely-too-long prompts.

The engine reports each sampled token's log-probability and its top alternatives as token ids
(``TokenLogprob``); clients want the tokens' text and bytes, in the completions shape (``tokens``,
``token_logprobs``, ``top_logprobs``, ``text_offset``) or the chat shape (``content``: one entry per token).
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any

__all__ = ["TokenTexts"]

_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


class TokenTexts:
    """Text and bytes of token ids for one tokenizer (SentencePiece's ``▁`` is a space, ``<0x0A>`` a byte)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._longest: int | None = None
        self._lock = threading.Lock()

    def bytes_of(self, token_id: int) -> bytes:
        piece = self.tokenizer.convert_ids_to_tokens(int(token_id))
        if piece is None:
            return b""
        match = _BYTE.match(piece)
        if match:
            return bytes([int(match.group(1), 16)])
        text = self.tokenizer.convert_tokens_to_string([piece])  # byte-level BPE pieces ("Ċ") become text
        if piece.startswith("\u2581") and not text.startswith(" "):  # SentencePiece drops a first space
            text = " " + text
        return text.encode()

    def text_of(self, token_id: int) -> str:
        return self.bytes_of(token_id).decode("utf-8", errors="replace")

    # -- the prompt-length bound ----------------------------------------------------------------------------------
    @property
    def longest_token(self) -> int:
        """The most characters one token covers (each token is at most this many characters of text)."""
        with self._lock:
            if self._longest is None:
                vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
                self._longest = max(1, *(len(p) for p in vocab if p))
            return self._longest

    def min_tokens(self, text: str) -> int:
        """A lower bound on the tokens of ``text``, without tokenising it."""
        return math.ceil(len(text) / self.longest_token)

    def surely_longer(self, text: str, limit: int) -> bool:
        """Whether ``text`` certainly has more than ``limit`` tokens (then tokenising it is wasted work)."""
        return self.tokenizer is not None and len(text) > limit and self.min_tokens(text) > limit

    # -- OpenAI shapes ----------------------------------------------------------------------------------------------
    def completion(self, logprobs: tuple[Any, ...], k: int) -> dict[str, Any]:
        """The completions API's ``logprobs``: tokens, their logprobs, the top ``k`` alternatives, offsets."""
        tokens, values, tops, offsets = [], [], [], []
        offset = 0
        for lp in logprobs:
            text = self.text_of(lp.token_id)
            tokens.append(text)
            values.append(lp.logprob)
            tops.append({self.text_of(t): v for t, v in lp.top[:k]} if k else None)
            offsets.append(offset)
            offset += len(text)
        return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}

    def chat(self, logprobs: tuple[Any, ...], k: int) -> dict[str, Any]:
        """The chat API's ``logprobs``: one entry per sampled token with its top ``k`` alternatives."""
        return {"content": [self._entry(lp.token_id, lp.logprob, [self._entry(t, v) for t, v in lp.top[:k]])
                            for lp in logprobs], "refusal": None}

    def _entry(self, token_id: int, logprob: float, top: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        raw = self.bytes_of(token_id)
        entry = {"token": raw.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(raw)}
        if top is not None:
            entry["top_logprobs"] = top
        return entry

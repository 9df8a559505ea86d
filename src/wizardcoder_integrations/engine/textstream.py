"""Token ids to text, incrementally, with stop strings found across token (or chunk) boundaries.

Text is released only once it can no longer become part of a stop string, so a caller never sees a
partial stop sequence, and never half a UTF-8 character.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["StopFilter", "TextStream"]


class StopFilter:
    """Watches growing text for stop strings and releases only what cannot start one."""

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = tuple(stop)
        self._longest = max((len(s) for s in self._stop), default=0)
        self.text = ""  # everything received
        self._released = 0
        self._stop_at: int | None = None
        self.stop_sequence: str | None = None

    @property
    def stopped(self) -> bool:
        return self.stop_sequence is not None

    @property
    def final_text(self) -> str:
        """The text, cut before the first stop string."""
        return self.text if self._stop_at is None else self.text[: self._stop_at]

    def push(self, chunk: str) -> str:
        """Add received text; return what is now safe to show (maybe "")."""
        if self.stopped:
            return ""
        self.text += chunk
        return self._release(final=False)

    def finish(self) -> str:
        """No more text is coming: a held-back partial stop string is plain text now."""
        return "" if self.stopped else self._release(final=True)

    def _release(self, *, final: bool) -> str:
        if self._stop:
            start = max(0, self._released - self._longest)
            found = [(at, s) for s in self._stop if (at := self.text.find(s, start)) != -1]
            if found:
                self._stop_at, self.stop_sequence = min(found)
                out = self.text[self._released:self._stop_at]
                self._released = self._stop_at
                return out
        safe = len(self.text) if final else len(self.text) - self._held_back()
        out = self.text[self._released:safe] if safe > self._released else ""
        self._released = max(self._released, safe)
        return out

    def _held_back(self) -> int:
        """Length of the longest suffix of the text that is a proper prefix of a stop string."""
        best = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(self.text)), best, -1):
                if self.text.endswith(s[:n]):
                    best = n
                    break
        return best


class TextStream:
    """Detokenizes one completion incrementally and filters it for stop strings."""

    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Sequence[str]) -> None:
        self._decode = decode
        self._filter = StopFilter(stop)
        self._ids: list[int] = []
        self._prefix_offset = 0  # ids[prefix_offset:read_offset] decode to text already accounted for
        self._read_offset = 0

    def push(self, token_id: int) -> str:
        """Add one token; return the text that is now safe to show (maybe "")."""
        if self._filter.stopped:
            return ""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
            return self._filter.push(new_text[len(prefix_text):])
        return ""

    def finish(self) -> str:
        """End of generation: decode what is pending and release everything that is not a stop."""
        if self._filter.stopped:
            return ""
        tail = self._decode(self._ids[self._prefix_offset:])
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        out = self._filter.push(tail[len(prefix_text):]) if len(tail) > len(prefix_text) else ""
        return out + self._filter.finish()

    @property
    def text(self) -> str:
        return self._filter.text

    @property
    def final_text(self) -> str:
        return self._filter.final_text

    @property
    def stop_sequence(self) -> str | None:
        return self._filter.stop_sequence

    @property
    def stopped(self) -> bool:
        return self._filter.stopped

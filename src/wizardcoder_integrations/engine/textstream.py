"""Token ids to text, incrementally, with stop strings found across token boundaries.

Text is released only once it can no longer become part of a stop string, so a caller never sees a
partial stop sequence, and never half a UTF-8 character.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["TextStream"]


class TextStream:
    """Detokenizes one completion and watches it for stop strings."""

    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Sequence[str]) -> None:
        self._decode = decode
        self._stop = tuple(stop)
        self._longest_stop = max((len(s) for s in self._stop), default=0)
        self._ids: list[int] = []
        self._prefix_offset = 0  # ids[prefix_offset:read_offset] decode to text already accounted for
        self._read_offset = 0
        self.text = ""  # all decoded text so far
        self._released = 0  # len of self.text handed out
        self.stop_sequence: str | None = None

    def push(self, token_id: int) -> str:
        """Add one token; return the text that is now safe to show (maybe "")."""
        if self.stop_sequence is not None:
            return ""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.text += new_text[len(prefix_text):]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
        return self._release()

    def finish(self) -> str:
        """End of generation: release what is held back (a partial stop string is plain text now)."""
        if self.stop_sequence is not None:
            return ""
        tail = self._decode(self._ids[self._prefix_offset:])
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        if len(tail) > len(prefix_text):
            self.text += tail[len(prefix_text):]
        out = self._release()
        if self.stop_sequence is None:
            out += self.text[self._released:]
            self._released = len(self.text)
        return out

    @property
    def final_text(self) -> str:
        """The completion's text, cut before the first stop string."""
        if self.stop_sequence is None:
            return self.text
        return self.text[: self._stop_at]

    @property
    def stopped(self) -> bool:
        return self.stop_sequence is not None

    def _release(self) -> str:
        if self._stop:
            start = max(0, self._released - self._longest_stop)
            first: tuple[int, str] | None = None
            for s in self._stop:
                at = self.text.find(s, start)
                if at != -1 and (first is None or at < first[0]):
                    first = (at, s)
            if first is not None:
                self._stop_at, self.stop_sequence = first
                out = self.text[self._released:self._stop_at]
                self._released = self._stop_at
                return out
        safe = len(self.text) - self._held_back()
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

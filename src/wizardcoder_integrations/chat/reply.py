"""Engine events -> a reply: prose as it becomes certain, tool calls once closed, then the whole :class:`Reply`.

Every chat front door feeds the engine's events through one :class:`ReplyBuilder` and converts its parts to
its framework's chunk types; so the text, the calls (valid and invalid), the finish reason and the usage of a
reply are the same whichever front door asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wizardcoder_integrations.chat.render import RenderedRequest
from wizardcoder_integrations.chat.toolcalls import StreamPart, ToolCallStream
from wizardcoder_integrations.chat.types import InvalidToolCall, ParsedToolCall, Reply, Usage

__all__ = ["ReplyBuilder", "is_final", "usage_of"]


def is_final(event: Any) -> bool:
    """Whether an engine event is the final result (it has a finish reason) rather than a text delta."""
    return getattr(event, "finish_reason", None) is not None


def usage_of(result: Any) -> Usage:
    """The token usage of an engine's final result."""
    return Usage(int(result.prompt_tokens), int(result.completion_tokens))


class ReplyBuilder:
    """One reply being decoded.

    :meth:`start` and :meth:`feed` return the reply's parts in order: prose deltas (``str``; prose after a tool
    call begins with a newline) and calls (:class:`ParsedToolCall`, :class:`InvalidToolCall`; a call of a tool
    not in ``tool_names`` is invalid). After the final event :attr:`reply` holds the whole :class:`Reply`.
    ``tool_names=None`` means the request had no tools: the reply is prose, never parsed for calls.
    """

    def __init__(self, prefix: str = "", tool_names: Sequence[str] | None = None, *,
                 single_call: bool = False) -> None:
        self.prefix = prefix
        self.split = ToolCallStream(tool_names, parse_calls=tool_names is not None)
        self.single_call = single_call
        self.text = ""
        self.calls: list[ParsedToolCall] = []
        self.invalid: list[InvalidToolCall] = []
        self.reply: Reply | None = None
        self._after_call = False

    @classmethod
    def for_request(cls, rendered: RenderedRequest) -> ReplyBuilder:
        """The builder of a rendered chat request's reply."""
        return cls(rendered.prefix, rendered.tool_names, single_call=rendered.single_call)

    def start(self) -> list[StreamPart]:
        """Parts known before generation (from a forced reply prefix; usually none)."""
        return self._parts(self.split.feed(self.prefix)) if self.prefix else []

    def feed(self, event: Any) -> list[StreamPart]:
        """Parts that one engine event makes certain; the final event sets :attr:`reply`."""
        if not is_final(event):
            return self._parts(self.split.feed(event.text))
        parts = self._parts(self.split.close())
        reason = event.finish_reason
        if self.calls and reason == "stop":
            reason = "tool_calls"
        self.reply = Reply(self.text, tuple(self.calls), tuple(self.invalid), reason, event.stop_sequence,
                           usage_of(event))
        return parts

    def _parts(self, parts: list[StreamPart]) -> list[StreamPart]:
        out: list[StreamPart] = []
        for part in parts:
            if isinstance(part, str):
                if self._after_call and self.text:
                    part = "\n" + part
                self._after_call = False
                self.text += part
                out.append(part)
            elif self.single_call and (self.calls or self.invalid):
                continue
            else:
                (self.calls if isinstance(part, ParsedToolCall) else self.invalid).append(part)  # type: ignore[arg-type]
                self._after_call = True
                out.append(part)
        return out

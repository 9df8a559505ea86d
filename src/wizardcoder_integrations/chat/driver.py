"""The one sync/async path from a prompt to engine events, with the call's timeout and retries.

:func:`events` drives ``engine.stream``, :func:`aevents` ``engine.astream``; both stop at the same deadline
and retry the same failures (retryable errors before any text came, with exponential backoff), so the sync
and async paths of every front door cannot drift apart. :func:`generate_reply` / :func:`agenerate_reply` run
a rendered chat request to its whole :class:`Reply`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wizardcoder_integrations.chat.render import RenderedRequest
from wizardcoder_integrations.chat.reply import ReplyBuilder
from wizardcoder_integrations.chat.types import Reply
from wizardcoder_integrations.errors import (
    EngineClosedError,
    GenerationError,
    GenerationTimeoutError,
    WizardCoderError,
)

if TYPE_CHECKING:
    from wizardcoder_integrations.engine.protocol import EngineEvent, EngineProtocol

__all__ = ["Call", "aevents", "agenerate_reply", "events", "generate_reply", "may_retry"]

#: First pause before a retry; each further retry waits twice as long.
BACKOFF_S = 0.5


@dataclass
class Call:
    """One generation: the engine, the prompt, its sampling overrides, and the call's limits.

    ``raw=False`` wraps ``prompt`` in the card's template (with ``system``); chat requests are rendered
    already and go raw.
    """

    engine: EngineProtocol
    prompt: str
    overrides: dict[str, Any] = field(default_factory=dict)
    raw: bool = True
    system: str | None = None
    timeout: float | None = None
    max_retries: int = 0


def may_retry(error: BaseException, attempt: int, max_retries: int) -> bool:
    """Whether a failure before any text is worth another try: a generation failure or a retryable error,
    never a caller mistake, a timeout or a closed engine."""
    if attempt >= max_retries or isinstance(error, (GenerationTimeoutError, EngineClosedError)):
        return False
    if isinstance(error, WizardCoderError) and error.retryable:
        return True
    return type(error) is GenerationError


def events(call: Call) -> Iterator[EngineEvent]:
    """The engine's events for ``call``; the deadline is checked at each event (the request is cancelled)."""
    retries = _Retries(call)
    while True:
        stream = call.engine.stream(call.prompt, raw=call.raw, system=call.system, **call.overrides)
        try:
            for event in stream:
                yield retries.received(event)
            return
        except WizardCoderError as e:
            pause = retries.pause_after(e)
        finally:
            stream.close()
        time.sleep(pause)


async def aevents(call: Call) -> AsyncIterator[EngineEvent]:
    """Async :func:`events`; the deadline cancels the request even while it waits for a token."""
    retries = _Retries(call)
    while True:
        stream = call.engine.astream(call.prompt, raw=call.raw, system=call.system, **call.overrides)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(anext(stream), retries.time_left())
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise _timed_out(call) from None
                yield retries.received(event)
        except WizardCoderError as e:
            pause = retries.pause_after(e)
        finally:
            await stream.aclose()
        await asyncio.sleep(pause)


class _Retries:
    """One call's deadline and retries: whether events came, and how long to wait before the next try."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.deadline = None if call.timeout is None else time.monotonic() + call.timeout
        self.attempt = 0
        self.got_event = False

    def time_left(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    def received(self, event: EngineEvent) -> EngineEvent:
        """Note an event; past the deadline the call fails instead."""
        if self.time_left() == 0.0:
            raise _timed_out(self.call)
        self.got_event = True
        return event

    def pause_after(self, error: WizardCoderError) -> float:
        """Seconds to wait before retrying after ``error``; re-raises it when it may not be retried."""
        if self.got_event or not may_retry(error, self.attempt, self.call.max_retries):
            raise error
        self.attempt += 1
        return BACKOFF_S * 2 ** (self.attempt - 1)


def generate_reply(engine: EngineProtocol, rendered: RenderedRequest, overrides: dict[str, Any], *,
                   timeout: float | None = None, max_retries: int = 0) -> Reply:
    """Run a rendered chat request to its whole reply."""
    builder = ReplyBuilder.for_request(rendered)
    builder.start()
    for event in events(_chat_call(engine, rendered, overrides, timeout, max_retries)):
        builder.feed(event)
    return _finished(builder)


async def agenerate_reply(engine: EngineProtocol, rendered: RenderedRequest, overrides: dict[str, Any], *,
                          timeout: float | None = None, max_retries: int = 0) -> Reply:
    """Async :func:`generate_reply`."""
    builder = ReplyBuilder.for_request(rendered)
    builder.start()
    async for event in aevents(_chat_call(engine, rendered, overrides, timeout, max_retries)):
        builder.feed(event)
    return _finished(builder)


def _chat_call(engine: EngineProtocol, rendered: RenderedRequest, overrides: dict[str, Any],
               timeout: float | None, max_retries: int) -> Call:
    stops = list(dict.fromkeys([*(overrides.get("stop") or []), *rendered.stops]))
    return Call(engine, rendered.prompt, {**overrides, "stop": stops, "grammar": rendered.grammar},
                timeout=timeout, max_retries=max_retries)


def _finished(builder: ReplyBuilder) -> Reply:
    if builder.reply is None:
        raise GenerationError("The engine ended the stream without a result; retry the call.")
    return builder.reply


def _timed_out(call: Call) -> GenerationTimeoutError:
    return GenerationTimeoutError(
        f"The reply took longer than timeout={call.timeout}s and was cancelled; raise timeout, lower "
        "max_tokens, or send a shorter prompt."
    )

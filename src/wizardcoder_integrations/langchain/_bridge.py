"""The one path from engine events to LangChain chunks, sync and async.

Each adapter writes one :class:`Assembler` (engine events -> its chunk type); :func:`run` drives it
from :meth:`Engine.stream`, :func:`arun` from :meth:`Engine.astream`. Timeouts and retries live here,
so the sync and async paths cannot drift apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from wizardcoder_integrations.errors import GenerationError

if TYPE_CHECKING:
    from wizardcoder_integrations.engine import Engine, GenerationResult, StreamDelta

__all__ = ["Assembler", "GenerationTimeoutError", "Request", "arun", "run"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class GenerationTimeoutError(GenerationError, TimeoutError):
    """A call ran past its ``timeout``; its request was cancelled."""


class Assembler(Protocol[T_co]):
    """Turns one request's engine events into adapter chunks."""

    def start(self) -> list[T_co]:
        """Chunks known before generation starts (e.g. a forced reply prefix)."""
        ...

    def feed(self, event: StreamDelta | GenerationResult) -> list[T_co]:
        """Chunks for one engine event; the :class:`GenerationResult` is always the last event."""
        ...


@dataclass
class Request(Generic[T]):
    """One generation: what to send the engine and how to turn its events into chunks."""

    engine: Engine
    prompt: str
    assembler: Assembler[T]
    overrides: dict[str, Any] = field(default_factory=dict)
    raw: bool = True
    system: str | None = None
    timeout: float | None = None
    max_retries: int = 0


def run(request: Request[T]) -> Iterator[T]:
    """Stream ``request`` synchronously (the timeout is checked between events)."""
    yield from request.assembler.start()
    deadline = None if request.timeout is None else time.monotonic() + request.timeout
    attempt = 0
    while True:
        events = request.engine.stream(request.prompt, raw=request.raw, system=request.system,
                                       **request.overrides)
        received = False
        try:
            for event in events:
                received = True
                if deadline is not None and time.monotonic() > deadline:
                    raise _timed_out(request)
                yield from request.assembler.feed(event)
            return
        except GenerationTimeoutError:
            raise
        except GenerationError:
            if received or not _may_retry(request, attempt):
                raise
            attempt += 1
        finally:
            events.close()


async def arun(request: Request[T]) -> AsyncIterator[T]:
    """Stream ``request`` on the event loop; the timeout cancels the request even mid-token."""
    for chunk in request.assembler.start():
        yield chunk
    deadline = None if request.timeout is None else time.monotonic() + request.timeout
    attempt = 0
    while True:
        events = request.engine.astream(request.prompt, raw=request.raw, system=request.system,
                                        **request.overrides)
        received = False
        try:
            while True:
                try:
                    if deadline is None:
                        event = await anext(events)
                    else:
                        event = await asyncio.wait_for(anext(events), max(deadline - time.monotonic(), 0.0))
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise _timed_out(request) from None
                received = True
                for chunk in request.assembler.feed(event):
                    yield chunk
        except GenerationTimeoutError:
            raise
        except GenerationError:
            if received or not _may_retry(request, attempt):
                raise
            attempt += 1
        finally:
            await events.aclose()


def _may_retry(request: Request[Any], attempt: int) -> bool:
    """Retry only failures a retry can fix: not a prompt that cannot fit the context."""
    if attempt >= request.max_retries:
        return False
    engine = request.engine
    text = engine.render(request.prompt, raw=request.raw, system=request.system)
    return len(engine.tokenize(text)) < engine.info.context_length


def _timed_out(request: Request[Any]) -> GenerationTimeoutError:
    return GenerationTimeoutError(
        f"The reply took longer than timeout={request.timeout}s and was cancelled; raise timeout, lower "
        "max_tokens, or send a shorter prompt."
    )

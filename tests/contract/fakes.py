"""A scripted engine: implements :class:`EngineProtocol` by replaying text, for tests that need no model.

Tokens are characters (BOS is one more); stop strings, ``max_new_tokens``, cancellation (closing a stream)
and ``close`` behave as the protocol says. It cannot constrain decoding to a grammar.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from wizardcoder_integrations.chat.template import format_instruction
from wizardcoder_integrations.engine.info import EngineInfo
from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta
from wizardcoder_integrations.errors import ConfigurationError, EngineClosedError

__all__ = ["ScriptedEngine"]


class ScriptedEngine:
    """Replies ``reply(prompt)`` (or a fixed text) to every prompt, one character per token."""

    context_length = 4096

    def __init__(self, reply: str | Callable[[str], str], *, model_name: str = "scripted-wizardcoder") -> None:
        self._reply = reply if callable(reply) else (lambda _prompt: reply)
        self.model_name = model_name
        self.closed = False
        self.prompts: list[str] = []

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(self.model_name, None, None, "cpu", "none", self.context_length, None)

    def params(self, **overrides: Any) -> SamplingParams:
        return SamplingParams.build(None, **overrides)

    def render(self, prompt: str, *, raw: bool = False, system: str | None = None) -> str:
        return prompt if raw else format_instruction(prompt, system)

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return [1] * add_special_tokens + [ord(c) for c in text]

    def count_tokens(self, text: str, *, add_special_tokens: bool = False) -> int:
        return len(self.tokenize(text, add_special_tokens=add_special_tokens))

    def _events(self, prompt: str, raw: bool, system: str | None, overrides: dict[str, Any]) -> list[Any]:
        if not isinstance(prompt, str):
            raise ConfigurationError(f"A prompt must be a string, got {type(prompt).__name__}.")
        if self.closed:
            raise EngineClosedError("The engine is closed; load a new one.")
        params = self.params(**overrides)
        text = self.render(prompt, raw=raw, system=system)
        prompt_tokens = len(self.tokenize(text))
        if prompt_tokens >= self.context_length:
            raise ConfigurationError(f"The prompt is {prompt_tokens} tokens but the context is {self.context_length}.")
        self.prompts.append(text)
        reply, finish, stop = self._reply(text), "stop", None
        cut = min(((reply.find(s), s) for s in params.stop if s in reply), default=None)
        if cut is not None:
            reply, stop = reply[:cut[0]], cut[1]
        budget = min(params.max_new_tokens, self.context_length - prompt_tokens)
        if len(reply) >= budget:
            reply, finish, stop = reply[:budget], "length", None
        used = len(reply) + (finish == "stop")  # the end-of-sequence token counts, as in the engine
        return [*(StreamDelta(c, (ord(c),)) for c in reply),
                GenerationResult(reply, prompt_tokens, used, finish, tuple(ord(c) for c in reply), stop, 0.0, 0.0)]

    def stream(self, prompt: str, *, raw: bool = False, system: str | None = None,
               **overrides: Any) -> Iterator[Any]:
        events = self._events(prompt, raw, system, overrides)

        def run() -> Iterator[Any]:
            for event in events:
                if self.closed:
                    raise EngineClosedError("The engine was closed while this request was running.")
                yield event

        return run()

    def generate(self, prompts: Sequence[str], *, raw: bool = False, system: str | None = None,
                 **overrides: Any) -> list[GenerationResult]:
        if isinstance(prompts, str):
            raise ConfigurationError("generate() takes a list of prompts; wrap a single prompt in a list.")
        return [list(self.stream(p, raw=raw, system=system, **overrides))[-1] for p in prompts]

    async def astream(self, prompt: str, *, raw: bool = False, system: str | None = None,
                      **overrides: Any) -> AsyncIterator[Any]:
        for event in self.stream(prompt, raw=raw, system=system, **overrides):
            await asyncio.sleep(0)
            yield event

    async def agenerate(self, prompts: Sequence[str], *, raw: bool = False, system: str | None = None,
                        **overrides: Any) -> list[GenerationResult]:
        async def one(p: str) -> GenerationResult:
            return [e async for e in self.astream(p, raw=raw, system=system, **overrides)][-1]

        return list(await asyncio.gather(*(one(p) for p in prompts)))

    def close(self) -> None:
        self.closed = True

"""What every engine offers: the in-process :class:`~.engine.Engine`, the ``RemoteEngine`` and test fakes.

Front doors type against :class:`EngineProtocol` and never branch on an engine's class. The contract suite
``tests/contract/test_engine_contract.py`` runs every implementation through the same checks.

Prompts are instructions wrapped in the card's template unless ``raw=True`` says they are rendered already;
``overrides`` are :class:`~.params.SamplingParams` fields (``temperature``, ``max_new_tokens``, ``top_p``,
``top_k``, ``repetition_penalty``, ``do_sample``, ``seed``, ``stop``, ``grammar``, and the penalties and
``logprobs`` where an engine has them). A stream yields :class:`~.results.StreamDelta` events and ends with one
:class:`~.results.GenerationResult` (text without stop strings, finish reason, ``stop_sequence``, usage).
Closing a stream, or cancelling the task that consumes an async one, cancels its request. After
:meth:`close`, queued and running requests fail at once with ``EngineClosedError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from wizardcoder_integrations.engine.info import EngineInfo
from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta

__all__ = ["EngineEvent", "EngineProtocol"]

EngineEvent = StreamDelta | GenerationResult


@runtime_checkable
class EngineProtocol(Protocol):
    """The interface of an engine; see the module docstring for the shared semantics."""

    @property
    def model_name(self) -> str:
        """The checkpoint (in-process) or served model name (remote)."""
        ...

    @property
    def info(self) -> EngineInfo:
        """What is loaded or served: model, revision, device, context length, quantization."""
        ...

    def params(self, **overrides: Any) -> SamplingParams:
        """The engine's defaults with ``overrides``; invalid values raise ``ConfigurationError`` now."""
        ...

    def render(self, prompt: str, *, raw: bool = False, system: str | None = None) -> str:
        """The exact text the model sees for ``prompt``."""
        ...

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` as the model reads it (with BOS unless ``add_special_tokens=False``)."""
        ...

    def count_tokens(self, text: str, *, add_special_tokens: bool = False) -> int:
        """How many tokens ``text`` is (without BOS unless asked)."""
        ...

    def generate(self, prompts: Sequence[str], *, raw: bool = False, system: str | None = None,
                 **overrides: Any) -> list[GenerationResult]:
        """Complete every prompt (batched where the engine can); results in prompt order."""
        ...

    def stream(self, prompt: str, *, raw: bool = False, system: str | None = None,
               **overrides: Any) -> Iterator[EngineEvent]:
        """Text deltas as they are decoded, then the result; closing the iterator cancels the request."""
        ...

    async def agenerate(self, prompts: Sequence[str], *, raw: bool = False, system: str | None = None,
                        **overrides: Any) -> list[GenerationResult]:
        """Async :meth:`generate`; never blocks the event loop, cancelling it stops the work."""
        ...

    def astream(self, prompt: str, *, raw: bool = False, system: str | None = None,
                **overrides: Any) -> AsyncIterator[EngineEvent]:
        """Async :meth:`stream`; cancelling the consuming task (or closing it) cancels the request."""
        ...

    def close(self) -> None:
        """Release this holder's use of the engine; the last holder's close fails pending requests at once."""
        ...

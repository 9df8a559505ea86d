"""The engine: one loaded WizardCoder per process, shared by every adapter, generating in batches."""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import torch

from wizardcoder_integrations.chat.template import format_instruction
from wizardcoder_integrations.engine.backends import Backend, EagerBackend, open_backend
from wizardcoder_integrations.engine.info import EngineInfo
from wizardcoder_integrations.engine.loading import LoadedModel, resolve_device
from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta
from wizardcoder_integrations.engine.scheduler import Request, Scheduler
from wizardcoder_integrations.engine.source import resolve_source
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.profiles import DEFAULT_MODEL, ModelProfile

__all__ = ["Engine", "EngineInfo"]


class _Registry:
    """The engines :meth:`Engine.load` shared, by every load option, with how many holders each has.

    Each ``load`` of a key adds a holder; each ``close`` removes one; the last holder's close shuts the engine
    down (its queued and running requests fail at once) and forgets it, so a later ``load`` loads again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[tuple[Any, ...], Engine] = {}
        self._holders: dict[int, int] = {}

    def acquire(self, key: tuple[Any, ...], build: Any) -> Engine:
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = self._engines[key] = build()
                engine._registry_key = key
            self._holders[id(engine)] = self._holders.get(id(engine), 0) + 1
            return engine

    def release(self, engine: Engine) -> bool:
        """Drop one holder of ``engine``; True when it was the last one (or never registered)."""
        with self._lock:
            key = engine._registry_key
            if key is None or self._engines.get(key) is not engine:
                return True
            left = self._holders[id(engine)] - 1
            if left > 0:
                self._holders[id(engine)] = left
                return False
            del self._engines[key], self._holders[id(engine)]
            return True

    def holders(self, engine: Engine) -> int:
        with self._lock:
            return self._holders.get(id(engine), 0)


REGISTRY = _Registry()


class Engine:
    """A loaded WizardCoder: template, batched generation, streaming, stop strings, token counts.

    Build it with :meth:`load`, which returns the same engine for the same load options (model, revision,
    profile, device, dtype, backend, max_batch_size) for the whole process; each ``load`` is a holder and
    :meth:`close` releases one. Prompts are instructions wrapped in the card's Alpaca template, unless
    ``raw=True`` says they are already rendered (chat adapters render whole conversations themselves).
    """

    def __init__(self, loaded: LoadedModel, *, max_batch_size: int | None = None,
                 defaults: SamplingParams | None = None, backend: Backend | None = None) -> None:
        self._registry_key: tuple[Any, ...] | None = None
        self._closed = False
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.defaults = defaults if defaults is not None else SamplingParams()
        self.eos_token_id = int(self.tokenizer.eos_token_id)
        if max_batch_size is None:
            max_batch_size = _default_batch_size(loaded.device)
        if backend is None:
            backend = EagerBackend(loaded.model, int(self.tokenizer.pad_token_id))
        self.backend = backend
        self.scheduler = Scheduler(backend, self.tokenizer, max_batch_size=max_batch_size,
                                   eos_token_id=self.eos_token_id)

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        revision: str | None = None,
        *,
        profile: str | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        max_batch_size: int | None = None,
        backend: str = "auto",
    ) -> Engine:
        """Load a checkpoint once per process: a Hub repo at a GPTQ branch (``revision``), or a local dir.

        ``backend``: "fast" (CUDA graphs, paged KV cache, int4 kernels; GPTQ Llama on a CUDA GPU), "eager"
        (transformers, any device) or "auto" (fast where it applies, else eager).
        """
        source = resolve_source(model, revision, profile=profile, cache_dir=cache_dir,
                                local_files_only=local_files_only)
        dev = resolve_device(device)
        if dtype is None:
            dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
        batch = _default_batch_size(dev) if max_batch_size is None else max_batch_size
        key = (*source.key, str(dev), str(dtype), backend, batch)

        def build() -> Engine:
            loaded, runtime = open_backend(source, dev, dtype, backend, batch)
            return cls(loaded, max_batch_size=batch, backend=runtime)

        return REGISTRY.acquire(key, build)

    @property
    def info(self) -> EngineInfo:
        lm = self.loaded
        q = lm.quantization
        return EngineInfo(
            model=lm.source.model,
            revision=lm.source.revision,
            profile=lm.source.profile.name if lm.source.profile else None,
            device=str(lm.device),
            dtype=str(lm.dtype).removeprefix("torch."),
            context_length=lm.context_length,
            quantization=None if q is None else f"gptq {q.bits}-bit g{q.group_size} act-order={q.desc_act}",
        )

    @property
    def stats(self) -> dict[str, Any]:
        """Running figures: decode/prefill steps, running requests, and the backend's KV-cache figures
        (prefix-cache hit rate and cached bytes on the fast path)."""
        return {"backend": self.backend.name, "steps": self.scheduler.steps, "running": self.scheduler.running,
                **self.backend.cache_stats()}

    @property
    def profile(self) -> ModelProfile | None:
        return self.loaded.source.profile

    @property
    def model_name(self) -> str:
        return self.loaded.source.model

    # -- tokens -------------------------------------------------------------------------------------------
    def render(self, prompt: str, *, raw: bool = False, system: str | None = None) -> str:
        """The exact text the model sees for ``prompt``."""
        return prompt if raw else format_instruction(prompt, system)

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` as the model receives it (with the BOS token unless ``add_special_tokens=False``)."""
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def count_tokens(self, text: str, *, add_special_tokens: bool = False) -> int:
        """How many tokens ``text`` is (without BOS unless asked)."""
        return len(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    # -- generation ---------------------------------------------------------------------------------------
    def _request(self, prompt: str, params: SamplingParams, sink: Any, raw: bool,
                 system: str | None) -> Request:
        if not isinstance(prompt, str):
            raise ConfigurationError(f"A prompt must be a string, got {type(prompt).__name__}.")
        ids = self.tokenize(self.render(prompt, raw=raw, system=system))
        context = self.loaded.context_length
        if len(ids) >= context:
            raise ConfigurationError(
                f"The prompt is {len(ids)} tokens but the model's context is {context} tokens, leaving no room "
                "to generate. Shorten the prompt (or the conversation history)."
            )
        return Request(ids, params, sink, max_new_tokens=min(params.max_new_tokens, context - len(ids)))

    def params(self, **overrides: Any) -> SamplingParams:
        """The engine's defaults with per-call overrides (``None`` keeps the default)."""
        return SamplingParams.build(self.defaults, **overrides)

    def generate(self, prompts: Sequence[str], *, raw: bool = False, system: str | None = None,
                 **overrides: Any) -> list[GenerationResult]:
        """Complete every prompt, batched together; results in prompt order."""
        if isinstance(prompts, str):
            raise ConfigurationError("generate() takes a list of prompts; wrap a single prompt in a list.")
        params = self.params(**overrides)
        sinks = [queue.SimpleQueue() for _ in prompts]
        requests = [self._request(p, params, q.put, raw, system) for p, q in zip(prompts, sinks, strict=True)]
        for r in requests:
            self.scheduler.submit(r)
        try:
            return [_drain(q) for q in sinks]
        finally:
            for r in requests:
                r.cancel()

    def stream(self, prompt: str, *, raw: bool = False, system: str | None = None,
               **overrides: Any) -> Iterator[StreamDelta | GenerationResult]:
        """Yield text deltas as they are decoded, then the :class:`GenerationResult`.

        Closing the iterator early cancels the request and frees its batch slot.
        """
        sink: queue.SimpleQueue[Any] = queue.SimpleQueue()
        request = self._request(prompt, self.params(**overrides), sink.put, raw, system)
        self.scheduler.submit(request)
        try:
            while not _is_last(event := sink.get()):
                yield event
            yield event
        finally:
            request.cancel()

    async def agenerate(self, prompts: Sequence[str], *, raw: bool = False, system: str | None = None,
                        **overrides: Any) -> list[GenerationResult]:
        """Async :meth:`generate`: never blocks the event loop; cancelling it stops the work."""
        return list(await asyncio.gather(
            *(self._acomplete(p, raw=raw, system=system, **overrides) for p in prompts)))

    async def _acomplete(self, prompt: str, **kwargs: Any) -> GenerationResult:
        events = [event async for event in self.astream(prompt, **kwargs)]
        return events[-1]  # the stream always ends with its result

    async def astream(self, prompt: str, *, raw: bool = False, system: str | None = None,
                      **overrides: Any) -> AsyncIterator[StreamDelta | GenerationResult]:
        """Async :meth:`stream`; cancelling the consuming task cancels the request."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()

        def sink(event: Any) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the caller's loop is gone: nobody is listening any more
                request.cancel()

        params = self.params(**overrides)
        # rendering and tokenising a long prompt takes seconds: off the event loop, so other clients go on
        request = await asyncio.to_thread(self._request, prompt, params, sink, raw, system)
        self.scheduler.submit(request)
        try:
            while not _is_last(event := await events.get()):
                yield event
            yield event
        finally:
            request.cancel()

    def close(self) -> None:
        """Release one holder's use; the last holder's close stops the engine and forgets it.

        Stopping fails every queued and running request at once and frees the model; a later :meth:`load`
        loads again. Closing an engine that is already stopped does nothing.
        """
        if not REGISTRY.release(self) or self._closed:
            return
        self._closed = True
        self.scheduler.close()
        self.backend.close()


def _default_batch_size(device: torch.device) -> int:
    return 64 if device.type == "cuda" else 16


def _is_last(event: Any) -> bool:
    """Whether a scheduler event ends the request (its result); a failure is raised here."""
    if isinstance(event, BaseException):
        raise event
    return isinstance(event, GenerationResult)


def _drain(sink: queue.SimpleQueue[Any]) -> GenerationResult:
    while not _is_last(event := sink.get()):
        pass
    return event

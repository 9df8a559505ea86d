"""Dynamic batching: one worker thread runs the model; requests join and leave the running batch.

Every step the worker admits waiting requests (the backend prefills them and appends them to its rows),
or decodes one token for every running row, then retires rows that stopped, ran out of tokens or were
cancelled. The backend (eager transformers or the fast CUDA path) owns the KV cache; the scheduler owns
requests, sampling and text. Callers only see events sent to their own sink.

Decode is pipelined: once a step's tokens are sampled (on the device), the next step is launched before
those tokens are turned into text, so the device computes while the host detokenizes, matches stop strings
and streams. A row that finishes meanwhile had one extra position computed, inside its reserved cache; its
extra logits are dropped.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from wizardcoder_integrations.engine.backends.base import Backend
from wizardcoder_integrations.engine.constraints import GrammarConstraints, Matcher
from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta
from wizardcoder_integrations.engine.sampling import _filter_top_k_top_p, apply_repetition_penalty
from wizardcoder_integrations.engine.textstream import TextStream
from wizardcoder_integrations.errors import GenerationError

__all__ = ["Request", "Scheduler"]

Event = StreamDelta | GenerationResult | BaseException
Sink = Callable[[Event], None]
# Python hands the GIL to a waiting thread only after this long (default 5 ms). On a GPU the worker must get
# it back as soon as a step's tokens arrive, or the device idles while event-loop threads run callbacks.
GPU_SWITCH_INTERVAL_S = 0.0005
_LIVE: weakref.WeakSet[Scheduler] = weakref.WeakSet()


@dataclass(eq=False)
class Request:
    """One completion in flight. ``sink`` receives deltas, then a result or an exception."""

    prompt_ids: list[int]
    params: SamplingParams
    sink: Sink
    max_new_tokens: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    generator: torch.Generator | None = None
    matcher: Matcher | None = None
    text: TextStream | None = None
    generated: list[int] = field(default_factory=list)
    pending_ids: list[int] = field(default_factory=list)
    submitted_at: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None

    def cancel(self) -> None:
        self.cancelled.set()

    @property
    def budget(self) -> int:
        """The most cache positions this request can use: its prompt plus every token it may generate."""
        return len(self.prompt_ids) + self.max_new_tokens


class Scheduler:
    """Owns the model's forward passes; thread-safe ``submit``."""

    def __init__(self, backend: Backend, tokenizer: Any, *, max_batch_size: int, eos_token_id: int) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.eos_token_id = eos_token_id
        self.device = backend.device
        self.vocab_size = backend.vocab_size
        self.constraints = GrammarConstraints(tokenizer, backend.vocab_size)
        self._waiting: deque[Request] = deque()
        self._wake = threading.Condition()
        self._rows: list[Request] = []
        self._last: torch.Tensor | None = None  # [B] each row's latest token, on the device
        self._seen: torch.Tensor | None = None  # [B, V] bool, tokens in prompt or output
        self._pending: torch.Tensor | None = None  # [B, V] logits of a launched step not yet sampled
        self._on_device: dict[str, tuple[tuple[Any, ...], torch.Tensor]] = {}  # per-row settings, cached
        self._closed = False
        if self.device.type == "cuda":
            sys.setswitchinterval(min(sys.getswitchinterval(), GPU_SWITCH_INTERVAL_S))
        self.steps = 0
        self._thread = threading.Thread(target=self._run, name="wizardcoder-scheduler", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    # -- public -------------------------------------------------------------------------------------------
    def submit(self, request: Request) -> None:
        if self._closed:
            raise GenerationError("The engine is closed; load a new one.")
        if request.params.seed is not None:
            request.generator = torch.Generator(device=self.device).manual_seed(request.params.seed)
        if request.params.grammar is not None:
            request.matcher = self.constraints.matcher(request.params.grammar)
        request.text = TextStream(self._decode, request.params.stop)
        with self._wake:
            self._waiting.append(request)
            self._wake.notify()

    def close(self, timeout: float = 30.0) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=timeout)

    @property
    def running(self) -> int:
        return len(self._rows)

    # -- worker -------------------------------------------------------------------------------------------
    def _decode(self, ids: Any) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self._rows and self._pending is None:
                    self._wake.wait()
                if self._closed:
                    self._fail_all(GenerationError("The engine was closed while this request was running."))
                    return
                admitted = self._admit()
            try:
                with torch.inference_mode():
                    self._step(admitted)
            except BaseException as e:
                error = e if isinstance(e, GenerationError) else GenerationError(
                    f"Generation failed on {self.device}: {e.__class__.__name__}: {e}")
                if isinstance(e, torch.OutOfMemoryError):
                    error = GenerationError(
                        f"Out of GPU memory with {len(self._rows) + len(admitted)} sequences running: {e}. "
                        "Lower max_batch_size or max_new_tokens, or send shorter prompts.")
                for r in admitted:
                    if r not in self._rows:
                        r.sink(error)
                self._fail_all(error)

    def _admit(self) -> list[Request]:
        """Take waiting requests while there is a batch slot and KV-cache room (call with the lock held)."""
        limit = self.backend.max_budget
        while self._waiting and (self._waiting[0].cancelled.is_set() or (
                limit is not None and self._waiting[0].budget > limit)):
            r = self._waiting.popleft()
            if r.cancelled.is_set():
                self._finish(r, "cancelled")
            else:
                r.sink(GenerationError(
                    f"The prompt ({len(r.prompt_ids)} tokens) plus max_new_tokens ({r.max_new_tokens}) needs "
                    f"{r.budget} KV-cache positions, but the cache holds {limit}. Lower max_new_tokens or "
                    "shorten the prompt."))
        room = self.max_batch_size - len(self._rows)
        candidates = [self._waiting[i] for i in range(min(room, len(self._waiting)))]
        take = self.backend.admissible([r.budget for r in candidates])
        admitted = [self._waiting.popleft() for _ in range(take)]
        return [r for r in admitted if not self._drop_if_cancelled(r)]

    def _drop_if_cancelled(self, r: Request) -> bool:
        if r.cancelled.is_set():
            self._finish(r, "cancelled")
            return True
        return False

    def _fail_all(self, error: BaseException) -> None:
        for r in self._rows:
            r.sink(error)
        if self._rows:
            with contextlib.suppress(BaseException):  # a broken backend: its rows are gone either way
                self.backend.keep([])
        self._rows, self._last, self._seen, self._pending = [], None, None, None

    def _step(self, admitted: list[Request]) -> None:
        if self._rows and (self._pending is not None or not admitted):
            self._decode_round(speculate=not admitted and not self._waiting)
        if admitted:
            self._prefill_round(admitted)

    def _decode_round(self, speculate: bool) -> None:
        """Sample the running rows' next tokens (from the launched step, or a new one); launch the next."""
        assert self._last is not None and self._seen is not None
        logits = self._pending if self._pending is not None else self.backend.decode_step(self._last)  # [B, V]
        self._pending = None
        rows = self._rows
        tokens = self._sample(logits, rows, self._seen)  # [B], on the device
        self._seen.scatter_(1, tokens[:, None], True)
        self._last = tokens
        ids = _ToHost(tokens)  # queued before the next step, so reading it waits only for this one
        if speculate:
            self._pending = self.backend.decode_step(tokens)
        self.steps += 1
        for r, token in zip(rows, ids.get(), strict=True):
            self._accept(r, token)
        self._retire()

    def _prefill_round(self, admitted: list[Request]) -> None:
        logits = self.backend.prefill([r.prompt_ids for r in admitted], [r.budget for r in admitted])
        seen = self._prompt_seen(admitted)
        tokens = self._sample(logits, admitted, seen)  # [n]
        seen.scatter_(1, tokens[:, None], True)
        self._rows = self._rows + admitted
        self._last = tokens if self._last is None else torch.cat([self._last, tokens])
        self._seen = seen if self._seen is None else torch.cat([self._seen, seen])
        self.steps += 1
        for r, token in zip(admitted, tokens.tolist(), strict=True):
            self._accept(r, token)
        self._retire()

    def _sample(self, logits: torch.Tensor, rows: list[Request], seen: torch.Tensor) -> torch.Tensor:
        """Next token per row (the rules of :func:`sampling.choose_next_tokens`), without host round trips:
        per-row settings live on the device while the rows don't change, and rows without a seed draw in one
        batched call (seeded rows draw from their own generator, so their tokens stay reproducible)."""
        params = [r.params for r in rows]
        logits = logits.float()
        penalty = tuple(p.repetition_penalty for p in params)
        if any(v != 1.0 for v in penalty):
            logits = apply_repetition_penalty(logits, seen, self._device_values("penalty", penalty, torch.float32))
        constrained = [i for i, r in enumerate(rows) if r.matcher is not None and not r.matcher.done]
        if constrained:
            allowed = self.constraints.mask([rows[i].matcher for i in constrained], logits.device)  # type: ignore[misc]
            index = torch.tensor(constrained, device=logits.device)
            logits = logits.index_copy(0, index, logits[index].masked_fill(~allowed, float("-inf")))
        tokens = torch.argmax(logits, dim=-1)
        sampled = tuple(i for i, p in enumerate(params) if not p.greedy)
        if not sampled:
            return tokens
        picked = self._device_values("rows", sampled, torch.long)
        temperature = self._device_values("temperature", tuple(params[i].temperature for i in sampled),
                                          torch.float32)
        top_k = self._device_values("top_k", tuple(params[i].top_k for i in sampled), torch.long)
        top_p = self._device_values("top_p", tuple(params[i].top_p for i in sampled), torch.float32)
        probs = torch.softmax(_filter_top_k_top_p(logits[picked] / temperature[:, None], top_k, top_p), dim=-1)
        free = tuple(j for j, i in enumerate(sampled) if rows[i].generator is None)
        if free:
            which = self._device_values("free", free, torch.long)
            tokens[picked[which]] = torch.multinomial(probs[which], 1)[:, 0]
        for j, i in enumerate(sampled):
            generator = rows[i].generator
            if generator is not None:
                tokens[i] = torch.multinomial(probs[j], 1, generator=generator)[0]
        return tokens

    def _device_values(self, name: str, values: tuple[Any, ...], dtype: torch.dtype) -> torch.Tensor:
        cached = self._on_device.get(name)
        if cached is None or cached[0] != values:
            cached = (values, torch.tensor(values, dtype=dtype, device=self.device))
            self._on_device[name] = cached
        return cached[1]

    def _prompt_seen(self, requests: list[Request]) -> torch.Tensor:
        """[n, V] bool: the tokens of each prompt (for the repetition penalty)."""
        lengths = torch.tensor([len(r.prompt_ids) for r in requests])
        rows = torch.repeat_interleave(torch.arange(len(requests)), lengths).to(self.device)
        ids = torch.tensor([t for r in requests for t in r.prompt_ids]).clamp(0, self.vocab_size - 1)
        seen = torch.zeros((len(requests), self.vocab_size), dtype=torch.bool, device=self.device)
        seen[rows, ids.to(self.device)] = True
        return seen

    def _accept(self, r: Request, token: int) -> None:
        now = time.perf_counter()
        if r.first_token_at is None:
            r.first_token_at = now
        r.generated.append(token)
        if r.matcher is not None and not r.matcher.done and not r.matcher.accept(token):
            r.matcher = None  # cannot happen with a correct mask; the rest of the reply runs unconstrained
        if token == self.eos_token_id:
            r.pending_ids.append(token)
            return
        assert r.text is not None
        r.pending_ids.append(token)
        delta = r.text.push(token)
        if delta:
            r.sink(StreamDelta(delta, tuple(r.pending_ids)))
            r.pending_ids = []

    def _retire(self) -> None:
        keep: list[int] = []
        for i, r in enumerate(self._rows):
            assert r.text is not None
            if r.cancelled.is_set():
                self._finish(r, "cancelled")
            elif (r.generated and r.generated[-1] == self.eos_token_id) or r.text.stopped:
                self._finish(r, "stop")
            elif len(r.generated) >= r.max_new_tokens:
                self._finish(r, "length")
            else:
                keep.append(i)
        if len(keep) == len(self._rows):
            return
        self.backend.keep(keep)
        if not keep:
            self._rows, self._last, self._seen, self._pending = [], None, None, None
            return
        assert self._last is not None and self._seen is not None
        idx = torch.tensor(keep, device=self.device)
        self._rows = [self._rows[i] for i in keep]
        self._last, self._seen = self._last[idx], self._seen[idx]
        if self._pending is not None:
            self._pending = self._pending[idx]

    def _finish(self, r: Request, reason: str) -> None:
        assert r.text is not None
        tail = r.text.finish() if reason != "cancelled" else ""
        if tail or r.pending_ids:
            r.sink(StreamDelta(tail, tuple(r.pending_ids)))
        now = time.perf_counter()
        r.sink(GenerationResult(
            text=r.text.final_text,
            prompt_tokens=len(r.prompt_ids),
            completion_tokens=len(r.generated),
            finish_reason=reason,  # type: ignore[arg-type]
            token_ids=tuple(r.generated),
            stop_sequence=r.text.stop_sequence,
            time_to_first_token_s=(r.first_token_at or now) - r.submitted_at,
            total_s=now - r.submitted_at,
        ))


@atexit.register
def _stop_workers() -> None:
    """Stop worker threads before the interpreter tears down the libraries they are inside."""
    for scheduler in list(_LIVE):
        scheduler.close(timeout=5.0)


class _ToHost:
    """A device tensor's values, copied to pinned host memory without waiting for later device work."""

    def __init__(self, values: torch.Tensor) -> None:
        if values.device.type != "cuda":
            self._host, self._done = values, None
            return
        self._host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
        self._host.copy_(values, non_blocking=True)
        self._done = torch.cuda.Event()
        self._done.record()

    def get(self) -> list[int]:
        if self._done is not None:
            self._done.synchronize()
        return self._host.tolist()

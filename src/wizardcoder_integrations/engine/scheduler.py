"""Dynamic batching: one worker thread runs the model; requests join and leave the running batch.

Every step the worker admits waiting requests (the backend prefills them and appends them to its rows),
or decodes one token for every running row, then retires rows that stopped, ran out of tokens or were
cancelled. The backend (eager transformers or the fast CUDA path) owns the KV cache; the scheduler owns
requests, sampling and text. Callers only see events sent to their own sink.

Decode is pipelined: once a step's tokens are sampled (on the device), the next step is launched before
those tokens are turned into text, so the device computes while the host detokenizes, matches stop strings
and streams. A row that finishes meanwhile had one extra position computed, inside its reserved cache; its
extra logits are dropped.

Sampling runs for the whole batch at once (:mod:`sampling`): every request carries a seed (its own, or one drawn
when it is submitted), so seeded requests give the same tokens alone or in any batch.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
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
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta, TokenLogprob
from wizardcoder_integrations.engine.sampling import BatchSettings, Sampled, sample
from wizardcoder_integrations.engine.textstream import TextStream
from wizardcoder_integrations.errors import (
    ConfigurationError,
    EngineClosedError,
    EngineOverloadedError,
    GenerationError,
)

__all__ = ["Request", "Scheduler"]

Event = StreamDelta | GenerationResult | BaseException
Sink = Callable[[Event], None]
_SERIALS = itertools.count()
_LIVE: weakref.WeakSet[Scheduler] = weakref.WeakSet()


@dataclass(eq=False)
class Request:
    """One completion in flight. ``sink`` receives deltas, then a result or an exception."""

    prompt_ids: list[int]
    params: SamplingParams
    sink: Sink
    max_new_tokens: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    seed: int = 0
    serial: int = field(default_factory=lambda: next(_SERIALS))
    matcher: Matcher | None = None
    text: TextStream | None = None
    generated: list[int] = field(default_factory=list)
    pending_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)
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
        self._counts: torch.Tensor | None = None  # [B, V] int32, how often each token was generated
        self._pending: torch.Tensor | None = None  # [B, V] logits of a launched step not yet sampled
        self._settings: tuple[tuple[int, ...], BatchSettings] | None = None  # per-row settings, by serials
        self._closed = False
        self.steps = 0
        self._thread = threading.Thread(target=self._run, name="wizardcoder-scheduler", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    # -- public -------------------------------------------------------------------------------------------
    def submit(self, request: Request) -> None:
        """Queue ``request``; its events go to its sink from the worker thread."""
        params = request.params
        if params.logit_bias and params.logit_bias[-1][0] >= self.vocab_size:
            raise ConfigurationError(
                f"logit_bias names token {params.logit_bias[-1][0]}, but the vocabulary has {self.vocab_size} "
                f"tokens (ids 0..{self.vocab_size - 1}); remove it or use a token id of this model.")
        seed = params.seed
        request.seed = int(torch.randint(0, 1 << 62, ())) if seed is None else seed
        if params.grammar is not None:
            request.matcher = self.constraints.matcher(params.grammar)
        request.text = TextStream(self._decode, params.stop)
        with self._wake:
            if self._closed:
                raise EngineClosedError("The engine is closed; load a new one.")
            self._waiting.append(request)
            self._wake.notify()

    def close(self, timeout: float = 30.0) -> None:
        """Fail every queued request now and every running one after the step in progress; stop the worker."""
        with self._wake:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            self._wake.notify()
        for r in waiting:
            r.sink(EngineClosedError("The engine was closed before this request started; load a new engine."))
        if threading.current_thread() is not self._thread:
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
                    self._fail_all(EngineClosedError("The engine was closed while this request was running."))
                    return
                admitted = self._admit()
            try:
                with torch.inference_mode():
                    self._step(admitted)
            except BaseException as e:
                error = e if isinstance(e, GenerationError) else GenerationError(
                    f"Generation failed on {self.device}: {e.__class__.__name__}: {e}")
                if isinstance(e, torch.OutOfMemoryError):
                    error = EngineOverloadedError(
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
                r.sink(ConfigurationError(
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
        self._rows, self._pending = [], None
        self._last = self._seen = self._counts = None

    def _step(self, admitted: list[Request]) -> None:
        if self._rows and (self._pending is not None or not admitted):
            self._decode_round(speculate=not admitted and not self._waiting)
        if admitted:
            self._prefill_round(admitted)

    def _decode_round(self, speculate: bool) -> None:
        """Sample the running rows' next tokens (from the launched step, or a new one); launch the next."""
        assert self._last is not None and self._seen is not None and self._counts is not None
        logits = self._pending if self._pending is not None else self.backend.decode_step(self._last)  # [B, V]
        self._pending = None
        rows = self._rows
        out = self._sample(logits, rows, self._seen, self._counts)
        tokens = out.tokens  # [B], on the device
        self._record(tokens, self._seen, self._counts)
        self._last = tokens
        host = _ToHost(out)  # queued before the next step, so reading it waits only for this one
        if speculate:
            self._pending = self.backend.decode_step(tokens)
        self.steps += 1
        for r, token, logprob in zip(rows, *host.get(), strict=True):
            self._accept(r, token, logprob)
        self._retire()

    def _prefill_round(self, admitted: list[Request]) -> None:
        logits = self.backend.prefill([r.prompt_ids for r in admitted], [r.budget for r in admitted])
        seen = self._prompt_seen(admitted)
        counts = torch.zeros(seen.shape, dtype=torch.int32, device=self.device)
        settings = BatchSettings.build([r.params for r in admitted], [r.seed for r in admitted], self.vocab_size,
                                       self.device)
        out = self._sample(logits, admitted, seen, counts, settings)
        self._record(out.tokens, seen, counts)
        self._rows = self._rows + admitted
        if self._last is None:
            self._last, self._seen, self._counts = out.tokens, seen, counts
        else:
            assert self._seen is not None and self._counts is not None
            self._last = torch.cat([self._last, out.tokens])
            self._seen = torch.cat([self._seen, seen])
            self._counts = torch.cat([self._counts, counts])
        self.steps += 1
        for r, token, logprob in zip(admitted, *_ToHost(out).get(), strict=True):
            self._accept(r, token, logprob)
        self._retire()

    def _sample(self, logits: torch.Tensor, rows: list[Request], seen: torch.Tensor, counts: torch.Tensor,
                settings: BatchSettings | None = None) -> Sampled:
        """Next token per row, for the whole batch on the device (see :mod:`sampling`); per-row settings stay
        on the device while the rows don't change."""
        if settings is None:
            serials = tuple(r.serial for r in rows)
            if self._settings is None or self._settings[0] != serials:
                self._settings = (serials, BatchSettings.build([r.params for r in rows], [r.seed for r in rows],
                                                               self.vocab_size, self.device))
            settings = self._settings[1]
        allowed = None
        constrained = [i for i, r in enumerate(rows) if r.matcher is not None and not r.matcher.done]
        if constrained:
            mask = self.constraints.mask([rows[i].matcher for i in constrained], logits.device)  # type: ignore[misc]
            allowed = torch.ones(logits.shape, dtype=torch.bool, device=logits.device)
            allowed[torch.tensor(constrained, device=logits.device)] = mask
        steps = [len(r.generated) for r in rows]  # the index of the token being chosen, per row
        return sample(logits, settings, seen=seen, counts=counts, steps=steps, allowed=allowed)

    @staticmethod
    def _record(tokens: torch.Tensor, seen: torch.Tensor, counts: torch.Tensor) -> None:
        """Note each row's new token [B] in its penalty state."""
        seen.scatter_(1, tokens[:, None], True)
        counts.scatter_add_(1, tokens[:, None], torch.ones_like(tokens[:, None], dtype=counts.dtype))

    def _prompt_seen(self, requests: list[Request]) -> torch.Tensor:
        """[n, V] bool: the tokens of each prompt (for the repetition penalty)."""
        lengths = torch.tensor([len(r.prompt_ids) for r in requests])
        rows = torch.repeat_interleave(torch.arange(len(requests)), lengths).to(self.device)
        ids = torch.tensor([t for r in requests for t in r.prompt_ids]).clamp(0, self.vocab_size - 1)
        seen = torch.zeros((len(requests), self.vocab_size), dtype=torch.bool, device=self.device)
        seen[rows, ids.to(self.device)] = True
        return seen

    def _accept(self, r: Request, token: int, logprob: TokenLogprob | None) -> None:
        now = time.perf_counter()
        if r.first_token_at is None:
            r.first_token_at = now
        r.generated.append(token)
        r.pending_ids.append(token)
        if r.params.logprobs is not None:
            assert logprob is not None
            if r.params.logprobs < len(logprob.top):
                logprob = TokenLogprob(logprob.token_id, logprob.logprob, logprob.top[: r.params.logprobs])
            r.logprobs.append(logprob)
            r.pending_logprobs.append(logprob)
        if r.matcher is not None and not r.matcher.done and not r.matcher.accept(token):
            r.matcher = None  # cannot happen with a correct mask; the rest of the reply runs unconstrained
        if token == self.eos_token_id:
            return
        assert r.text is not None
        delta = r.text.push(token)
        if delta:
            r.sink(StreamDelta(delta, tuple(r.pending_ids), tuple(r.pending_logprobs)))
            r.pending_ids, r.pending_logprobs = [], []

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
            self._rows, self._pending = [], None
            self._last = self._seen = self._counts = None
            return
        assert self._last is not None and self._seen is not None and self._counts is not None
        idx = torch.tensor(keep, device=self.device)
        self._rows = [self._rows[i] for i in keep]
        self._last, self._seen, self._counts = self._last[idx], self._seen[idx], self._counts[idx]
        if self._pending is not None:
            self._pending = self._pending[idx]

    def _finish(self, r: Request, reason: str) -> None:
        assert r.text is not None
        tail = r.text.finish() if reason != "cancelled" else ""
        if tail or r.pending_ids:
            r.sink(StreamDelta(tail, tuple(r.pending_ids), tuple(r.pending_logprobs)))
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
            logprobs=tuple(r.logprobs) if r.params.logprobs is not None else None,
        ))


@atexit.register
def _stop_workers() -> None:
    """Stop worker threads before the interpreter tears down the libraries they are inside."""
    for scheduler in list(_LIVE):
        scheduler.close(timeout=5.0)


class _ToHost:
    """A step's choices copied to pinned host memory without waiting for later device work."""

    def __init__(self, out: Sampled) -> None:
        parts = [out.tokens] + [t for t in (out.logprob, out.top_ids, out.top_logprobs) if t is not None]
        self._shape = (out.logprob is not None, out.top_ids is not None)
        if out.tokens.device.type != "cuda":
            self._host, self._done = parts, None
            return
        self._host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in parts]
        for host, t in zip(self._host, parts, strict=True):
            host.copy_(t, non_blocking=True)
        self._done = torch.cuda.Event()
        self._done.record()

    def get(self) -> tuple[list[int], list[TokenLogprob | None]]:
        """Token ids, and each row's :class:`TokenLogprob` (None for every row when none were computed)."""
        if self._done is not None:
            self._done.synchronize()
        tokens = self._host[0].tolist()
        has_logprob, has_top = self._shape
        if not has_logprob:
            return tokens, [None] * len(tokens)
        chosen = self._host[1].tolist()
        if not has_top:
            return tokens, [TokenLogprob(t, lp) for t, lp in zip(tokens, chosen, strict=True)]
        ids, lps = self._host[2].tolist(), self._host[3].tolist()
        return tokens, [TokenLogprob(t, lp, tuple(zip(i, p, strict=True)))
                        for t, lp, i, p in zip(tokens, chosen, ids, lps, strict=True)]

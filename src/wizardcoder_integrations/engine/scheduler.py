"""Dynamic batching: one worker thread runs the model; requests join and leave the running batch.

Every step the worker admits waiting requests (prefilled together, left-padded, then merged into the
running batch's KV cache), decodes one token for every running row, and retires rows that stopped,
ran out of tokens or were cancelled. Callers only see events sent to their own sink.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta
from wizardcoder_integrations.engine.sampling import choose_next_tokens
from wizardcoder_integrations.engine.textstream import TextStream
from wizardcoder_integrations.errors import GenerationError

__all__ = ["Request", "Scheduler"]

Event = StreamDelta | GenerationResult | BaseException
Sink = Callable[[Event], None]


@dataclass(eq=False)
class Request:
    """One completion in flight. ``sink`` receives deltas, then a result or an exception."""

    prompt_ids: list[int]
    params: SamplingParams
    sink: Sink
    max_new_tokens: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    generator: torch.Generator | None = None
    text: TextStream | None = None
    generated: list[int] = field(default_factory=list)
    pending_ids: list[int] = field(default_factory=list)
    submitted_at: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None

    def cancel(self) -> None:
        self.cancelled.set()


class _Batch:
    """The running rows and their KV cache: mask [B, T] marks real (1) vs padding (0) positions."""

    def __init__(self) -> None:
        self.rows: list[Request] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # [B, T] long
        self.last: torch.Tensor | None = None  # [B] next input token
        self.seen: torch.Tensor | None = None  # [B, V] bool, tokens in prompt or output

    def __len__(self) -> int:
        return len(self.rows)


class Scheduler:
    """Owns the model's forward passes; thread-safe ``submit``."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_size: int, eos_token_id: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.eos_token_id = eos_token_id
        self.device = next(model.parameters()).device
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0]) if hasattr(
            model.get_output_embeddings(), "weight") else int(model.config.vocab_size)
        self._waiting: deque[Request] = deque()
        self._wake = threading.Condition()
        self._batch = _Batch()
        self._closed = False
        self.steps = 0
        self._thread = threading.Thread(target=self._run, name="wizardcoder-scheduler", daemon=True)
        self._thread.start()

    # -- public -------------------------------------------------------------------------------------------
    def submit(self, request: Request) -> None:
        if self._closed:
            raise GenerationError("The engine is closed; load a new one.")
        if request.params.seed is not None:
            request.generator = torch.Generator(device=self.device).manual_seed(request.params.seed)
        request.text = TextStream(self._decode, request.params.stop)
        with self._wake:
            self._waiting.append(request)
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=30)

    @property
    def running(self) -> int:
        return len(self._batch)

    # -- worker -------------------------------------------------------------------------------------------
    def _decode(self, ids: Any) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self._batch.rows:
                    self._wake.wait()
                if self._closed:
                    self._fail_all(GenerationError("The engine was closed while this request was running."))
                    return
                room = self.max_batch_size - len(self._batch)
                admitted = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
            admitted = [r for r in admitted if not self._drop_if_cancelled(r)]
            try:
                with torch.inference_mode():
                    self._step(admitted)
            except BaseException as e:
                error = e if isinstance(e, GenerationError) else GenerationError(
                    f"Generation failed on {self.device}: {e.__class__.__name__}: {e}")
                if isinstance(e, torch.OutOfMemoryError):
                    error = GenerationError(
                        f"Out of GPU memory with {len(self._batch) + len(admitted)} sequences running: {e}. "
                        "Lower max_batch_size or max_new_tokens, or send shorter prompts.")
                for r in admitted:
                    r.sink(error)
                self._fail_all(error)

    def _drop_if_cancelled(self, r: Request) -> bool:
        if r.cancelled.is_set():
            self._finish(r, "cancelled")
            return True
        return False

    def _fail_all(self, error: BaseException) -> None:
        for r in self._batch.rows:
            r.sink(error)
        self._batch = _Batch()

    def _step(self, admitted: list[Request]) -> None:
        batch = self._batch
        if admitted:
            logits = self._prefill(admitted)  # [n, V]
            rows = admitted
        else:
            logits = self._decode_step()  # [B, V]
            rows = batch.rows
        self.steps += 1
        seen = batch.seen[-len(rows):] if admitted else batch.seen
        tokens = choose_next_tokens(logits, [r.params for r in rows], seen,
                                    [r.generator for r in rows]).tolist()
        offset = len(batch.rows) - len(rows)
        for j, (r, token) in enumerate(zip(rows, tokens, strict=True)):
            batch.last[offset + j] = token
            batch.seen[offset + j, token] = True
            self._accept(r, token)
        self._retire()

    def _accept(self, r: Request, token: int) -> None:
        now = time.perf_counter()
        if r.first_token_at is None:
            r.first_token_at = now
        r.generated.append(token)
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
        for i, r in enumerate(self._batch.rows):
            assert r.text is not None
            if r.cancelled.is_set():
                self._finish(r, "cancelled")
            elif (r.generated and r.generated[-1] == self.eos_token_id) or r.text.stopped:
                self._finish(r, "stop")
            elif len(r.generated) >= r.max_new_tokens:
                self._finish(r, "length")
            else:
                keep.append(i)
        if len(keep) < len(self._batch):
            self._select(keep)

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

    # -- model phases -------------------------------------------------------------------------------------
    def _prefill(self, new: list[Request]) -> torch.Tensor:
        """Run the prompts of ``new`` (left-padded together) and merge them into the running batch.

        Returns the logits of each new row's last prompt position: [n, V].
        """
        from transformers import DynamicCache

        longest = max(len(r.prompt_ids) for r in new)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(new), longest), pad, dtype=torch.long)  # [n, L]
        mask = torch.zeros((len(new), longest), dtype=torch.long)  # [n, L]
        for i, r in enumerate(new):
            ids[i, longest - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            mask[i, longest - len(r.prompt_ids):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [n, L]
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        seen = torch.zeros((len(new), self.vocab_size), dtype=torch.bool, device=self.device)
        seen.scatter_(1, ids.clamp(max=self.vocab_size - 1), mask.bool())
        self._merge(new, out.past_key_values, mask, seen)
        return out.logits[:, -1, :]

    def _decode_step(self) -> torch.Tensor:
        """One token for every running row: logits [B, V]."""
        b = self._batch
        assert b.mask is not None and b.last is not None
        b.mask = torch.cat([b.mask, torch.ones_like(b.mask[:, :1])], dim=1)  # [B, T+1]
        positions = (b.mask.sum(-1, keepdim=True) - 1)  # [B, 1]
        out = self.model(input_ids=b.last[:, None], attention_mask=b.mask, position_ids=positions,
                         past_key_values=b.cache, use_cache=True)
        b.cache = out.past_key_values
        return out.logits[:, -1, :]

    def _merge(self, new: list[Request], cache: Any, mask: torch.Tensor, seen: torch.Tensor) -> None:
        b = self._batch
        last = torch.zeros(len(new), dtype=torch.long, device=self.device)
        if not b.rows:
            b.rows, b.cache, b.mask, b.last, b.seen = list(new), cache, mask, last, seen
            return
        assert b.mask is not None and b.last is not None and b.seen is not None
        width = max(b.mask.shape[1], mask.shape[1])
        for old_layer, new_layer in zip(b.cache.layers, cache.layers, strict=True):
            for name in ("keys", "values"):
                merged = torch.cat([_left_pad(getattr(old_layer, name), width, dim=2),
                                    _left_pad(getattr(new_layer, name), width, dim=2)], dim=0)
                setattr(old_layer, name, merged)
        b.mask = torch.cat([_left_pad(b.mask, width, dim=1), _left_pad(mask, width, dim=1)], dim=0)
        b.last = torch.cat([b.last, last])
        b.seen = torch.cat([b.seen, seen])
        b.rows.extend(new)

    def _select(self, keep: list[int]) -> None:
        """Keep only rows ``keep``, and drop leading cache columns that are padding in every row."""
        b = self._batch
        if not keep:
            self._batch = _Batch()
            return
        assert b.mask is not None and b.last is not None and b.seen is not None
        idx = torch.tensor(keep, device=self.device)
        mask = b.mask[idx]
        start = int((mask.sum(0) > 0).nonzero()[0])  # first column any row uses
        for layer in b.cache.layers:
            layer.keys = layer.keys[idx, :, start:]
            layer.values = layer.values[idx, :, start:]
        b.mask, b.last, b.seen = mask[:, start:], b.last[idx], b.seen[idx]
        b.rows = [b.rows[i] for i in keep]


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=dim)

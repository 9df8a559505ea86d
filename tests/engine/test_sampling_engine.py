"""Sampling settings through the engine on the stand-in, and the scheduler's shutdown."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from wizardcoder_integrations.engine import Engine, GenerationResult, StreamDelta
from wizardcoder_integrations.engine.backends.base import Backend
from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.scheduler import Request, Scheduler
from wizardcoder_integrations.errors import ConfigurationError, GenerationError
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS

GREEDY = {"do_sample": False}


def test_greedy_logprobs_are_aligned_and_the_chosen_token_is_the_top_one(engine: Engine) -> None:
    task = CODE_TASKS[2]
    plain = engine.generate([task.instruction], **GREEDY)[0]
    result = engine.generate([task.instruction], logprobs=3, **GREEDY)[0]
    assert result.token_ids == plain.token_ids and plain.logprobs is None
    assert result.logprobs is not None and len(result.logprobs) == len(result.token_ids)
    for token, lp in zip(result.token_ids, result.logprobs, strict=True):
        assert lp.token_id == token and lp.logprob <= 0.0 and len(lp.top) == 3
        assert lp.top[0][0] == token and lp.top[0][1] == pytest.approx(lp.logprob)
        assert [p for _, p in lp.top] == sorted((p for _, p in lp.top), reverse=True)


def test_streamed_logprobs_match_token_ids(engine: Engine) -> None:
    events = list(engine.stream(CODE_TASKS[4].instruction, logprobs=1, seed=3, max_new_tokens=40))
    *deltas, result = events
    assert isinstance(result, GenerationResult) and result.logprobs is not None
    ids = [t for d in deltas if isinstance(d, StreamDelta) for t in d.token_ids]
    lps = [lp for d in deltas if isinstance(d, StreamDelta) for lp in d.logprobs]
    assert tuple(ids) == result.token_ids and tuple(lps) == result.logprobs
    assert [lp.token_id for lp in lps] == ids


def test_logit_bias_steers_greedy_decoding(engine: Engine) -> None:
    task = CODE_TASKS[0]
    first = engine.generate([task.instruction], max_new_tokens=1, **GREEDY)[0].token_ids[0]
    steered = engine.generate([task.instruction], max_new_tokens=1, logit_bias={first: -100}, **GREEDY)[0]
    assert steered.token_ids[0] != first
    forced = engine.generate([task.instruction], max_new_tokens=3, logit_bias={500: 100}, **GREEDY)[0]
    assert forced.token_ids == (500, 500, 500)


def test_frequency_and_presence_penalties_break_a_forced_repeat(engine: Engine) -> None:
    token, n = 500, 24
    settings = {"max_new_tokens": n, "logit_bias": {token: 30.0}, "repetition_penalty": 1.0, **GREEDY}
    repeated = engine.generate([CODE_TASKS[0].instruction], **settings)[0]
    penalised = engine.generate([CODE_TASKS[0].instruction], frequency_penalty=2.0, presence_penalty=2.0,
                                **settings)[0]
    assert repeated.token_ids.count(token) == n  # the bias alone makes it win every step
    assert penalised.token_ids[0] == token and penalised.token_ids.count(token) < n  # 2 * count + 2 > 30


def test_a_bias_outside_the_vocabulary_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="vocabulary"):
        engine.generate(["hi"], logit_bias={10**6: 1.0})


def test_seeded_sampling_is_the_same_alone_and_in_a_mixed_batch(engine: Engine) -> None:
    prompt = CODE_TASKS[6].instruction
    alone = engine.generate([prompt], seed=21, temperature=1.2, max_new_tokens=40)[0]
    batch = engine.generate([CODE_TASKS[1].instruction, prompt, "Write a haiku."], seed=21, temperature=1.2,
                            max_new_tokens=40)
    assert batch[1].token_ids == alone.token_ids


class _SlowBackend(Backend):
    """A backend whose every step takes a while: rows stay running when the scheduler closes."""

    name = "slow"
    device = torch.device("cpu")
    vocab_size = 8

    def __init__(self) -> None:
        self.rows = 0

    def prefill(self, prompts: list[list[int]], budgets: list[int]) -> torch.Tensor:
        time.sleep(0.05)
        self.rows += len(prompts)
        return torch.zeros((len(prompts), self.vocab_size))

    def decode_step(self, tokens: torch.Tensor) -> torch.Tensor:
        time.sleep(0.05)
        return torch.zeros((self.rows, self.vocab_size))

    def keep(self, indices: list[int]) -> None:
        self.rows = len(indices)


class _Tokenizer:
    def decode(self, ids: list[int], **_: object) -> str:
        return "x" * len(ids)


def test_close_fails_queued_and_running_requests_at_once() -> None:
    scheduler = Scheduler(_SlowBackend(), _Tokenizer(), max_batch_size=2, eos_token_id=7)
    outcomes: list[object] = []
    done = threading.Event()
    lock = threading.Lock()

    def sink(event: object) -> None:
        if isinstance(event, GenerationResult | BaseException):
            with lock:
                outcomes.append(event)
                if len(outcomes) == 20:
                    done.set()

    params = SamplingParams(do_sample=False, max_new_tokens=10_000)
    for _ in range(20):
        scheduler.submit(Request([1, 2], params, sink, max_new_tokens=10_000))
    while scheduler.running < 2:
        time.sleep(0.01)
    scheduler.close()
    assert done.wait(5.0), f"{len(outcomes)} of 20 requests heard back"
    assert all(isinstance(o, GenerationError) and "closed" in str(o) for o in outcomes)
    with pytest.raises(GenerationError, match="closed"):
        scheduler.submit(Request([1], params, sink, max_new_tokens=1))


def test_the_scheduler_leaves_the_switch_interval_alone(engine: Engine) -> None:
    import sys

    before = sys.getswitchinterval()
    engine.generate(["hi"], max_new_tokens=2, **GREEDY)
    assert sys.getswitchinterval() == before

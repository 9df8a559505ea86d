"""The engine contract: every :class:`EngineProtocol` implementation passes the same checks.

Implementations: the in-process ``Engine`` (on the stand-in) and the scripted test engine; the remote engine
(through a live ``wizardcoder serve``) plugs in as another ``engine_impl`` parameter. Checked: generate,
stream, async, cancel, stops, length limits, grammar, usage, errors, close.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from wizardcoder_integrations.chat import json_reply_grammar
from wizardcoder_integrations.engine.protocol import EngineProtocol
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta
from wizardcoder_integrations.errors import ConfigurationError, GenerationError

from .fakes import ScriptedEngine

INSTRUCTION = "Write a Python function that returns the sum of a list."
GREEDY: dict[str, Any] = {"temperature": 0.0, "do_sample": False, "max_new_tokens": 48}
SCRIPT = "```python\ndef total(xs):\n    return sum(xs)\n```"


class Impl:
    """How to get an engine of one implementation, and what it can do (capability flags)."""

    def __init__(self, name: str, shared: Callable[[Any], Any], fresh: Callable[[Any], Any], *,
                 decodes_grammar: bool) -> None:
        self.name, self.shared, self.fresh, self.decodes_grammar = name, shared, fresh, decodes_grammar


def _local_fresh(request: Any) -> Any:
    from wizardcoder_integrations.standin import load_standin_engine

    request.getfixturevalue("standin")
    return load_standin_engine("main", max_batch_size=3)  # its own registry key: not the session's engine


IMPLS = [
    Impl("local", lambda request: request.getfixturevalue("engine"), _local_fresh, decodes_grammar=True),
    Impl("scripted", lambda request: ScriptedEngine(SCRIPT), lambda request: ScriptedEngine(SCRIPT),
         decodes_grammar=False),
]


@pytest.fixture(params=IMPLS, ids=lambda impl: impl.name)
def impl(request: Any) -> Impl:
    return request.param


@pytest.fixture
def engine_under_test(impl: Impl, request: Any) -> Any:
    return impl.shared(request)


def _events(engine: Any, prompt: str = INSTRUCTION, **overrides: Any) -> list[Any]:
    return list(engine.stream(prompt, **{**GREEDY, **overrides}))


def test_it_implements_the_protocol(engine_under_test: Any) -> None:
    assert isinstance(engine_under_test, EngineProtocol)
    assert engine_under_test.info.context_length > 0 and engine_under_test.model_name


def test_generate_and_stream_agree_and_report_usage(engine_under_test: Any) -> None:
    [result] = engine_under_test.generate([INSTRUCTION], **GREEDY)
    events = _events(engine_under_test)
    *deltas, last = events
    assert all(isinstance(e, StreamDelta) for e in deltas) and isinstance(last, GenerationResult)
    assert "".join(d.text for d in deltas) == last.text == result.text and result.text
    prompt = engine_under_test.render(INSTRUCTION)
    assert result.prompt_tokens == len(engine_under_test.tokenize(prompt))
    assert result.completion_tokens >= 1 and result.total_tokens == result.prompt_tokens + result.completion_tokens
    assert engine_under_test.count_tokens("abc") == len(engine_under_test.tokenize("abc", add_special_tokens=False))


def test_results_come_in_prompt_order(engine_under_test: Any) -> None:
    other = "Write a Python function that reverses a string."
    both = engine_under_test.generate([INSTRUCTION, other], **GREEDY)
    assert [r.text for r in both] == [engine_under_test.generate([p], **GREEDY)[0].text for p in (INSTRUCTION, other)]


async def test_async_matches_sync(engine_under_test: Any) -> None:
    [sync] = engine_under_test.generate([INSTRUCTION], **GREEDY)
    [result] = await engine_under_test.agenerate([INSTRUCTION], **GREEDY)
    events = [e async for e in engine_under_test.astream(INSTRUCTION, **GREEDY)]
    assert result.text == events[-1].text == sync.text


def test_closing_a_stream_cancels_it_and_the_engine_goes_on(engine_under_test: Any) -> None:
    stream = engine_under_test.stream(INSTRUCTION, **GREEDY)
    assert isinstance(next(stream), StreamDelta)
    stream.close()
    assert engine_under_test.generate([INSTRUCTION], **GREEDY)[0].text


async def test_cancelling_an_async_consumer_cancels_the_request(engine_under_test: Any) -> None:
    streaming = asyncio.Event()

    async def consume() -> None:
        async for _ in engine_under_test.astream(INSTRUCTION, **{**GREEDY, "max_new_tokens": 512}):
            streaming.set()
            await asyncio.sleep(60)  # the consumer is still reading when it is cancelled

    task = asyncio.create_task(consume())
    await asyncio.wait_for(streaming.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [after] = await engine_under_test.agenerate([INSTRUCTION], **GREEDY)
    assert after.text


def test_a_stop_string_ends_the_text_before_it(engine_under_test: Any) -> None:
    [free] = engine_under_test.generate([INSTRUCTION], **GREEDY)
    stop = free.text[len(free.text) // 2:][:3]
    [stopped] = engine_under_test.generate([INSTRUCTION], stop=[stop], **GREEDY)
    assert stopped.text == free.text[:free.text.index(stop)]
    assert (stopped.finish_reason, stopped.stop_sequence) == ("stop", stop)


def test_max_new_tokens_ends_with_length(engine_under_test: Any) -> None:
    [short] = engine_under_test.generate([INSTRUCTION], **{**GREEDY, "max_new_tokens": 2})
    assert (short.finish_reason, short.completion_tokens) == ("length", 2)


def test_a_grammar_keeps_the_reply_valid_json(impl: Impl, engine_under_test: Any) -> None:
    if not impl.decodes_grammar:
        pytest.xfail(f"the {impl.name} engine replays text; it has no constrained decoding")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}  # a value of bounded length: the reply must close within the budget
    grammar = json_reply_grammar(schema)
    prompt = engine_under_test.render("Reply with a JSON object with a boolean ok.") + "\n" + grammar.prefix
    [result] = engine_under_test.generate([prompt], raw=True, grammar=grammar, **{**GREEDY, "max_new_tokens": 24})
    assert isinstance(json.loads(grammar.prefix + result.text)["ok"], bool)


def test_caller_mistakes_are_configuration_errors(engine_under_test: Any) -> None:
    with pytest.raises(ConfigurationError, match="temperature"):
        engine_under_test.generate([INSTRUCTION], temperature=-1.0)
    with pytest.raises(ConfigurationError, match="list of prompts"):
        engine_under_test.generate(INSTRUCTION)
    with pytest.raises(ConfigurationError, match="string"):
        list(engine_under_test.stream(42))  # type: ignore[arg-type]
    too_long = "word " * (engine_under_test.info.context_length + 10)
    with pytest.raises(ConfigurationError, match="context"):
        engine_under_test.generate([too_long], raw=True)


def test_close_fails_a_running_request_and_later_ones(impl: Impl, request: Any) -> None:
    engine = impl.fresh(request)
    hot = {"do_sample": True, "temperature": 5.0, "top_k": 0, "top_p": 1.0, "seed": 3, "max_new_tokens": 512}
    stream = engine.stream(INSTRUCTION, **hot)  # random text runs long: the close lands mid-reply
    next(stream)
    engine.close()
    with pytest.raises(GenerationError, match="closed"):
        for _ in stream:
            pass
    with pytest.raises(GenerationError, match="closed"):
        engine.generate([INSTRUCTION], **GREEDY)


def test_the_registry_shares_one_engine_per_load_options_and_counts_holders(request: Any) -> None:
    first, second = _local_fresh(request), _local_fresh(request)
    assert first is second
    first.close()  # one holder gone: the other still generates
    assert second.generate([INSTRUCTION], **GREEDY)[0].text
    second.close()  # the last holder: the engine stops
    with pytest.raises(GenerationError, match="closed"):
        second.generate([INSTRUCTION], **GREEDY)
    third = _local_fresh(request)
    try:
        assert third is not first and third.generate([INSTRUCTION], **GREEDY)[0].text
    finally:
        third.close()

"""The engine on the quantised stand-in: trained answers, stops, streaming, batching, counts, async."""

from __future__ import annotations

import asyncio
import time

import pytest

from wizardcoder_integrations.chat import extract_code
from wizardcoder_integrations.engine import Engine, GenerationResult, StreamDelta
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.standin import load_standin_engine
from wizardcoder_integrations.standin.tasks import CODE_TASKS

GREEDY = {"do_sample": False}


def _collect(events: list[StreamDelta | GenerationResult]) -> tuple[str, GenerationResult]:
    *deltas, result = events
    assert isinstance(result, GenerationResult)
    assert all(isinstance(d, StreamDelta) for d in deltas)
    return "".join(d.text for d in deltas), result


def test_greedy_answers_are_the_trained_code_and_it_runs(engine: Engine) -> None:
    results = engine.generate([t.instruction for t in CODE_TASKS], **GREEDY)
    for task, result in zip(CODE_TASKS, results, strict=True):
        assert result.text == task.response, task.instruction
        assert result.finish_reason == "stop" and result.token_ids[-1] == engine.eos_token_id
        namespace: dict[str, object] = {}
        exec(compile(extract_code(result.text), "<answer>", "exec"), namespace)  # the stand-in's own code
        exec(task.check, namespace)


def test_eos_is_cut_and_the_prompt_is_not_echoed(engine: Engine) -> None:
    task = CODE_TASKS[0]
    result = engine.generate([task.instruction], **GREEDY)[0]
    assert "</s>" not in result.text and "### Instruction" not in result.text
    assert result.stop_sequence is None and result.finish_reason == "stop"


def test_token_counts_are_exact(engine: Engine) -> None:
    task = CODE_TASKS[3]
    result = engine.generate([task.instruction], **GREEDY)[0]
    tok = engine.tokenizer
    assert result.prompt_tokens == len(tok(engine.render(task.instruction))["input_ids"])
    assert result.completion_tokens == len(result.token_ids)
    assert list(result.token_ids) == tok(task.response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert engine.count_tokens(task.response) == result.completion_tokens - 1


@pytest.mark.parametrize("stop", ["    return", "return a", "a % b\n", "a, b"])
def test_multi_token_stop_strings_cut_in_generate_and_stream(engine: Engine, stop: str) -> None:
    task = CODE_TASKS[9]  # gcd: "while b:\n        a, b = b, a % b\n    return a"
    full = task.response
    assert stop in full and len(engine.tokenizer(stop, add_special_tokens=False)["input_ids"]) > 1
    result = engine.generate([task.instruction], stop=[stop], **GREEDY)[0]
    assert result.text == full[: full.index(stop)]
    assert (result.finish_reason, result.stop_sequence) == ("stop", stop)
    streamed, final = _collect(list(engine.stream(task.instruction, stop=[stop], **GREEDY)))
    assert streamed == result.text == final.text


def test_partial_stop_match_does_not_swallow_text(engine: Engine) -> None:
    task = CODE_TASKS[9]
    result = engine.generate([task.instruction], stop=["return b"], **GREEDY)[0]  # "return a" shares a prefix
    assert result.text == task.response and result.stop_sequence is None


@pytest.mark.parametrize("overrides", [GREEDY, {"seed": 11}, {"seed": 12, "temperature": 1.3}])
def test_stream_concatenation_equals_generate(engine: Engine, overrides: dict[str, object]) -> None:
    prompt = CODE_TASKS[5].instruction
    result = engine.generate([prompt], **overrides)[0]
    streamed, final = _collect(list(engine.stream(prompt, **overrides)))
    assert streamed == result.text == final.text
    assert final.token_ids == result.token_ids


def test_batch_of_n_equals_n_single_calls(engine: Engine) -> None:
    prompts = [CODE_TASKS[i].instruction for i in (0, 7, 11, 21)] + ["Say something unusual about llamas."]
    for overrides in (GREEDY, {"seed": 5}):
        batched = engine.generate(prompts, max_new_tokens=60, **overrides)
        single = [engine.generate([p], max_new_tokens=60, **overrides)[0] for p in prompts]
        assert [r.token_ids for r in batched] == [r.token_ids for r in single]


def test_length_limit(engine: Engine) -> None:
    result = engine.generate([CODE_TASKS[11].instruction], max_new_tokens=5, **GREEDY)[0]
    assert (result.finish_reason, result.completion_tokens) == ("length", 5)
    assert CODE_TASKS[11].response.startswith(result.text)


async def test_async_calls_run_concurrently_without_blocking_the_loop(engine: Engine) -> None:
    prompts = [CODE_TASKS[11].instruction, CODE_TASKS[21].instruction]
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.002)

    tick_task = asyncio.create_task(ticker())
    started = time.perf_counter()
    results = await asyncio.gather(*(engine.agenerate([p], **GREEDY) for p in prompts))
    elapsed = time.perf_counter() - started
    done.set()
    await tick_task
    assert [r[0].text for r in results] == [CODE_TASKS[11].response, CODE_TASKS[21].response]
    # the loop kept ticking while the model worked (a blocked loop would tick ~once)
    assert ticks >= 5, (ticks, elapsed)
    # both were in flight together: each got its first token before either finished
    first_tokens = [r[0].time_to_first_token_s for r in results]
    assert max(first_tokens) < min(r[0].total_s for r in results)
    assert max(r[0].total_s for r in results) <= elapsed


async def test_concurrent_requests_share_a_batch(engine: Engine) -> None:
    prompts = [CODE_TASKS[i].instruction for i in range(6)]
    results = await engine.agenerate(prompts, **GREEDY)
    assert [r.text for r in results] == [CODE_TASKS[i].response for i in range(6)]
    assert max(r.time_to_first_token_s for r in results) < min(r.total_s for r in results)


async def test_cancelling_an_async_stream_frees_its_slot(engine: Engine) -> None:
    seen: list[str] = []

    async def consume() -> None:
        async for event in engine.astream("Tell me a long story about the sea.", max_new_tokens=400, seed=1,
                                          temperature=1.5, repetition_penalty=1.0):
            if isinstance(event, StreamDelta):
                seen.append(event.text)

    task = asyncio.create_task(consume())
    while not seen:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if engine.scheduler.running == 0:
            break
        await asyncio.sleep(0.01)
    assert engine.scheduler.running == 0


def test_closing_a_stream_cancels_the_request(engine: Engine) -> None:
    stream = engine.stream("Write a poem about compilers.", max_new_tokens=400, seed=2, temperature=1.5)
    first = next(stream)
    assert isinstance(first, StreamDelta)
    stream.close()
    deadline = time.monotonic() + 5
    while engine.scheduler.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.scheduler.running == 0


@pytest.mark.parametrize(("overrides", "error", "needle"), [
    ({"temperature": -1.0}, ConfigurationError, "temperature"),
    ({"max_new_tokens": 0}, ConfigurationError, "max_new_tokens"),
    ({"top_p": 2.0}, ConfigurationError, "top_p"),
    ({"unknown_knob": 1}, ConfigurationError, "unknown_knob"),
])
def test_invalid_inputs_are_clear_errors(engine: Engine, overrides: dict[str, object], error: type,
                                         needle: str) -> None:
    with pytest.raises(error, match=needle):
        engine.generate(["hi"], **overrides)


def test_prompt_longer_than_the_context_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="context is 2048 tokens"):
        engine.generate(["word " * 3000])


def test_a_single_string_is_not_a_batch(engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="list of prompts"):
        engine.generate("hello")  # type: ignore[arg-type]


def test_one_load_per_process(engine: Engine) -> None:
    assert load_standin_engine("main") is engine

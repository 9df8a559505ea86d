"""WizardCoderLLM on the stand-in: every path agrees, stops hold, callbacks and usage are exact."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="the 'langchain' extra is not installed")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate

from wizardcoder_integrations.chat import format_instruction
from wizardcoder_integrations.errors import ConfigurationError, GenerationError
from wizardcoder_integrations.langchain import WizardCoderLLM
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS

pytestmark = pytest.mark.slow

TASKS = CODE_TASKS[:4]
GCD = CODE_TASKS[9]  # "while b:\n        a, b = b, a % b\n    return a"


class Tokens(BaseCallbackHandler):
    """Records every token the model reports."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


async def _astream(llm: WizardCoderLLM, prompt: str, **kwargs: Any) -> str:
    return "".join([c async for c in llm.astream(prompt, **kwargs)])


def test_invoke_stream_batch_ainvoke_astream_agree_and_never_echo_the_prompt(llm: WizardCoderLLM) -> None:
    expected = [t.response for t in TASKS]
    prompts = [t.instruction for t in TASKS]
    assert [llm.invoke(p) for p in prompts] == expected
    assert ["".join(llm.stream(p)) for p in prompts] == expected
    assert llm.batch(prompts) == expected

    async def both() -> tuple[list[str], list[str]]:
        return (list(await asyncio.gather(*(llm.ainvoke(p) for p in prompts))),
                list(await asyncio.gather(*(_astream(llm, p) for p in prompts))))

    assert asyncio.run(both()) == (expected, expected)
    for task, out in zip(TASKS, expected, strict=True):
        assert "### Instruction" not in out and task.instruction not in out


def test_a_chain_with_a_prompt_template_and_parser(llm: WizardCoderLLM) -> None:
    template = PromptTemplate.from_template("Write a Python function {what}.")
    chain = template | llm | StrOutputParser()
    assert chain.invoke({"what": "add(a, b) that returns the sum of two numbers"}) == CODE_TASKS[0].response


@pytest.mark.parametrize("stop", ["    return", "a % b\n"])
def test_stop_holds_in_every_path(llm: WizardCoderLLM, engine: Any, stop: str) -> None:
    cut = GCD.response[: GCD.response.index(stop)]
    p = GCD.instruction
    assert llm.invoke(p, stop=[stop]) == cut
    assert "".join(llm.stream(p, stop=[stop])) == cut
    assert llm.batch([p, p], stop=[stop]) == [cut, cut]
    assert asyncio.run(llm.ainvoke(p, stop=[stop])) == cut
    assert asyncio.run(_astream(llm, p, stop=[stop])) == cut
    configured = WizardCoderLLM(engine=engine, temperature=0, stop=[stop])
    assert configured.invoke(p) == cut and "".join(configured.stream(p)) == cut
    result = configured.generate([p])
    assert result.generations[0][0].generation_info["stop_sequence"] == stop  # type: ignore[index]


def test_callbacks_see_every_token_exactly_once(llm: WizardCoderLLM) -> None:
    prompt = TASKS[2].instruction
    streamed = [c for c in llm.stream(prompt) if c]
    for run in (lambda cb: llm.invoke(prompt, config={"callbacks": [cb]}),
                lambda cb: list(llm.stream(prompt, config={"callbacks": [cb]})),
                lambda cb: asyncio.run(llm.ainvoke(prompt, config={"callbacks": [cb]})),
                lambda cb: asyncio.run(_astream(llm, prompt, config={"callbacks": [cb]}))):
        handler = Tokens()
        run(handler)
        assert handler.tokens == streamed
    handler = Tokens()
    llm.batch([TASKS[0].instruction, TASKS[1].instruction], config={"callbacks": [handler]})
    each = [c for t in TASKS[:2] for c in llm.stream(t.instruction) if c]
    assert Counter(handler.tokens) == Counter(each)


def test_usage_counts_are_the_tokenizers(llm: WizardCoderLLM, engine: Any) -> None:
    result = llm.generate([t.instruction for t in TASKS[:2]])
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for task, [generation] in zip(TASKS[:2], result.generations, strict=True):
        usage = generation.generation_info["token_usage"]  # type: ignore[index]
        assert usage["prompt_tokens"] == len(engine.tokenizer(format_instruction(task.instruction))["input_ids"])
        assert usage["completion_tokens"] == len(engine.generate([task.instruction], do_sample=False)[0].token_ids)
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert generation.generation_info["finish_reason"] == "stop"  # type: ignore[index]
        total = {k: total[k] + usage[k] for k in total}
    assert result.llm_output == {"token_usage": total, "model_name": llm.model}
    assert llm.get_num_tokens("def f():") == len(engine.tokenizer("def f():", add_special_tokens=False)["input_ids"])


def test_a_batch_is_decoded_as_one_engine_batch(llm: WizardCoderLLM, engine: Any) -> None:
    prompts = [t.instruction for t in TASKS]
    before = engine.scheduler.steps
    llm.batch(prompts)
    batched = engine.scheduler.steps - before
    before = engine.scheduler.steps
    for p in prompts:
        llm.invoke(p)
    one_by_one = engine.scheduler.steps - before
    assert batched < one_by_one / 2


def test_per_call_settings_and_their_errors(llm: WizardCoderLLM) -> None:
    result = llm.generate([TASKS[0].instruction], max_tokens=3)
    info = result.generations[0][0].generation_info
    assert info["finish_reason"] == "length" and info["token_usage"]["completion_tokens"] == 3  # type: ignore[index]
    with pytest.raises(ConfigurationError, match="Unknown option"):
        llm.invoke("x", max_new_tokens=3)
    with pytest.raises(ConfigurationError, match="temperature"):
        llm.invoke("x", temperature=-1.0)


def test_raw_prompts_are_sent_verbatim(engine: Any) -> None:
    raw = WizardCoderLLM(engine=engine, temperature=0, raw=True)
    assert raw.invoke(format_instruction(TASKS[1].instruction)) == TASKS[1].response


def test_timeout_cancels_in_both_paths(engine: Any, llm: WizardCoderLLM) -> None:
    hasty = WizardCoderLLM(engine=engine, temperature=0, timeout=1e-9)
    with pytest.raises(GenerationError, match="timeout"):
        hasty.invoke(TASKS[0].instruction)
    with pytest.raises(TimeoutError):
        asyncio.run(hasty.ainvoke(TASKS[0].instruction))
    assert llm.invoke(TASKS[0].instruction) == TASKS[0].response  # the engine is fine afterwards


def test_tracing_params_name_provider_and_model(llm: WizardCoderLLM) -> None:
    params = llm._get_ls_params(stop=["x"])
    assert params["ls_provider"] == "wizardcoder" and params["ls_model_type"] == "llm"
    assert params["ls_model_name"] == llm.model and params["ls_temperature"] == 0
    assert params["ls_max_tokens"] == 128 and params["ls_stop"] == ["x"]


class _Flaky:
    """An engine whose first ``failures`` requests fail before producing anything (like out of memory)."""

    def __init__(self, engine: Any, failures: int) -> None:
        self.engine, self.failures, self.requests = engine, failures, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def stream(self, prompt: str, **kwargs: Any) -> Any:
        self.requests += 1
        if self.failures:
            self.failures -= 1
            raise GenerationError("Out of GPU memory (simulated)")
        yield from self.engine.stream(prompt, **kwargs)


def test_max_retries_retries_failures_that_produced_nothing(engine: Any) -> None:
    from wizardcoder_integrations.chat.driver import Call, events
    from wizardcoder_integrations.chat.reply import is_final

    task = TASKS[0]

    def complete(flaky: _Flaky, retries: int, prompt: str = task.instruction) -> str:
        call = Call(flaky, prompt, {"temperature": 0}, raw=False, max_retries=retries)
        return "".join(e.text for e in events(call) if not is_final(e))

    flaky = _Flaky(engine, failures=1)
    assert complete(flaky, retries=1) == task.response and flaky.requests == 2
    with pytest.raises(GenerationError, match="simulated"):
        complete(_Flaky(engine, failures=1), retries=0)
    too_long = _Flaky(engine, failures=1)
    with pytest.raises(ConfigurationError, match="context"):
        # a caller's mistake: retried no further
        complete(too_long, retries=3, prompt="word " * (engine.info.context_length + 1))
    assert too_long.requests == 2

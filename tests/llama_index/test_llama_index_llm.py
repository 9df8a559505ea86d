"""WizardCoder as a LlamaIndex LLM on the stand-in: one template in every path, kwargs, usage, events, async."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel
from pydantic import Field as PydanticField

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock, ToolCallBlock
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
)
from llama_index.core.tools import FunctionTool

from wizardcoder_integrations.chat import format_instruction
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.llama_index import WizardCoder
from wizardcoder_integrations.scenarios.llama_index_agents import (
    FUNCTION_QUESTION,
    FUNCTION_SYSTEM_PROMPT,
    LLM_SETTINGS,
    SYSTEM_PROMPT,
    SYSTEM_PROMPT_INSTRUCTION,
    get_weather,
)
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS
from wizardcoder_integrations.standin import STANDIN_REPO

pytestmark = pytest.mark.slow

TASK = CODE_TASKS[0]  # the same instruction as SYSTEM_PROMPT_INSTRUCTION
assert TASK.instruction == SYSTEM_PROMPT_INSTRUCTION
ANSWER = TASK.response.strip()
LAMBDA_ANSWER = "```python\nadd = lambda a, b: a + b\n```"


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


# -- metadata and construction --------------------------------------------------------------------------
def test_metadata_comes_from_the_loaded_model(llm, engine):
    meta = llm.metadata
    assert meta.context_window == engine.loaded.model.config.max_position_embeddings == 16384
    assert meta.num_output == 512  # the card's max_new_tokens
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.model_name == STANDIN_REPO
    assert WizardCoder(engine=engine, max_tokens=64).metadata.num_output == 64


def test_without_an_engine_the_process_wide_engine_is_loaded_once(engine, standin):
    llm = WizardCoder(model=STANDIN_REPO, revision="main", cache_dir=str(standin.hub_cache),
                      local_files_only=True)
    assert llm.engine is engine


def test_bad_settings_are_clear_errors(engine):
    with pytest.raises(ValueError, match="temperature"):
        WizardCoder(engine=engine, temperature=-1)
    with pytest.raises(ConfigurationError, match="max_tokens"):
        WizardCoder(engine=engine, max_new_tokens=64)
    with pytest.raises(ConfigurationError, match="holds"):
        WizardCoder(engine=engine, model="TheBloke/WizardCoder-Python-13B-V1.0-GPTQ")
    llm = WizardCoder(engine=engine)
    with pytest.raises(ConfigurationError, match="Unknown generation argument"):
        llm.complete("hi", beams=3)
    with pytest.raises(ConfigurationError, match="top_p"):
        llm.complete("hi", top_p=2.0)


# -- one template in every path -------------------------------------------------------------------------
def test_complete_and_chat_render_the_card_template_identically(llm, engine):
    text, prefix = llm.render_messages([user(TASK.instruction)])
    assert text == format_instruction(TASK.instruction) == engine.render(TASK.instruction) and prefix == ""
    with_system = WizardCoder(engine=engine, system_prompt=SYSTEM_PROMPT)
    text, _ = with_system.render_messages([user(TASK.instruction)])
    assert text == format_instruction(TASK.instruction, SYSTEM_PROMPT)
    # LLM.predict adds the system prompt as a message itself: it must not appear twice
    twice, _ = with_system.render_messages([ChatMessage(role="system", content=SYSTEM_PROMPT), user("x")])
    assert twice.count(SYSTEM_PROMPT) == 1


async def test_every_path_gives_the_same_text(llm):
    messages = [user(TASK.instruction)]
    complete = llm.complete(TASK.instruction)
    assert complete.text == ANSWER
    streamed = list(llm.stream_complete(TASK.instruction))
    assert "".join(c.delta for c in streamed) == streamed[-1].text == ANSWER
    assert len(streamed) > 2  # really streamed, token by token
    assert llm.chat(messages).message.content == ANSWER
    assert "".join(c.delta for c in llm.stream_chat(messages)) == ANSWER
    assert (await llm.acomplete(TASK.instruction)).text == ANSWER
    assert "".join([c.delta async for c in await llm.astream_complete(TASK.instruction)]) == ANSWER
    assert (await llm.achat(messages)).message.content == ANSWER
    assert "".join([c.delta async for c in await llm.astream_chat(messages)]) == ANSWER
    assert llm.predict(_prompt("{instruction}"), instruction=TASK.instruction) == ANSWER


def _prompt(template: str):
    from llama_index.core.prompts import PromptTemplate

    return PromptTemplate(template)


async def test_system_prompt_changes_the_answer_in_every_path(engine):
    llm = WizardCoder(engine=engine, system_prompt=SYSTEM_PROMPT, **LLM_SETTINGS)
    assert llm.complete(TASK.instruction).text == LAMBDA_ANSWER
    assert "".join(c.delta for c in llm.stream_complete(TASK.instruction)) == LAMBDA_ANSWER
    assert (await llm.achat([user(TASK.instruction)])).message.content == LAMBDA_ANSWER
    assert llm.predict(_prompt("{instruction}"), instruction=TASK.instruction) == LAMBDA_ANSWER
    plain = WizardCoder(engine=engine, **LLM_SETTINGS)
    system_message = ChatMessage(role="system", content=SYSTEM_PROMPT)
    assert plain.chat([system_message, user(TASK.instruction)]).message.content == LAMBDA_ANSWER


def test_per_call_kwargs_apply_to_that_call_only(llm):
    short = llm.complete(TASK.instruction, max_tokens=4)
    assert short.raw["finish_reason"] == "length" and short.raw["usage"]["completion_tokens"] == 4
    assert ANSWER.startswith(short.text) and short.text != ANSWER
    cut = llm.complete(TASK.instruction, stop=["return"])
    assert cut.text == ANSWER[: ANSWER.index("return")].strip() and cut.raw["stop_sequence"] == "return"
    hot = {"do_sample": True, "temperature": 5.0, "top_k": 0, "top_p": 1.0, "seed": 7, "max_tokens": 16}
    sampled = llm.complete(TASK.instruction, **hot)
    assert sampled.text != ANSWER  # the call sampled instead of decoding greedily...
    assert llm.complete(TASK.instruction, **hot).text == sampled.text  # ...with the call's own seed
    assert llm.complete(TASK.instruction, max_tokens=4).text == short.text  # LlamaIndex's usual spelling
    assert llm.complete(TASK.instruction).text == ANSWER  # and the LLM's own settings are untouched


def test_llm_level_settings_apply_to_every_call(engine):
    llm = WizardCoder(engine=engine, max_tokens=4, stop=["def"], **LLM_SETTINGS)
    assert llm.chat([user(TASK.instruction)]).message.content == "```python"


def test_formatted_prompts_are_sent_verbatim(llm):
    raw_prompt = format_instruction(TASK.instruction)
    response = llm.complete(raw_prompt, formatted=True)
    assert response.text == response.raw["text"] == TASK.response  # not even the leading newline is touched


def test_non_text_content_is_refused(llm):
    image = ChatMessage(role="user", blocks=[TextBlock(text="what is this?"),
                                             ImageBlock(url="https://example.com/a.png")])
    with pytest.raises(ConfigurationError, match="text only"):
        llm.chat([image])


# -- usage, callbacks, instrumentation ------------------------------------------------------------------
def test_usage_is_reported_and_counted_by_llama_index(engine):
    counter = TokenCountingHandler()
    llm = WizardCoder(engine=engine, callback_manager=CallbackManager([counter]), **LLM_SETTINGS)
    response = llm.chat([user(TASK.instruction)])
    usage = response.raw["usage"]
    assert usage["prompt_tokens"] == len(engine.tokenize(format_instruction(TASK.instruction)))
    assert usage["completion_tokens"] == len(engine.generate([TASK.instruction], do_sample=False)[0].token_ids)
    assert response.additional_kwargs == usage
    assert counter.prompt_llm_token_count == usage["prompt_tokens"]
    assert counter.completion_llm_token_count == usage["completion_tokens"]
    *_, last = llm.stream_complete(TASK.instruction)
    assert last.raw["usage"] == usage


class _Recorder(BaseEventHandler):
    events: list = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event, **kwargs) -> None:
        self.events.append(event)


async def test_instrumentation_events_fire(llm):
    recorder = _Recorder()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(recorder)
    try:
        llm.complete(TASK.instruction)
        await llm.achat([user(TASK.instruction)])
        list(llm.stream_chat([user(TASK.instruction)]))
    finally:
        dispatcher.event_handlers.remove(recorder)
    kinds = [type(e) for e in recorder.events]
    assert LLMCompletionEndEvent in kinds
    assert kinds.count(LLMChatStartEvent) == 2 and kinds.count(LLMChatEndEvent) == 2
    ends = [e for e in recorder.events if isinstance(e, LLMChatEndEvent)]
    assert all(e.response.message.content == ANSWER for e in ends)


# -- async really overlaps ------------------------------------------------------------------------------
async def test_concurrent_acomplete_calls_overlap(engine):
    """Two concurrent requests share the engine's batch: together they take less than one after the other."""
    llm = WizardCoder(engine=engine, do_sample=True, temperature=5.0, top_k=0, top_p=1.0, max_tokens=48)
    prompt = "Tell me a long story."

    async def timed(seed: int):
        start = time.perf_counter()
        response = await llm.acomplete(prompt, seed=seed)
        return start, time.perf_counter(), response

    await timed(0)  # warm-up
    solo: dict[int, tuple[float, str]] = {}
    for seed in range(1, 16):  # two seeds whose replies run to max_new_tokens: long enough to time
        start, end, response = await timed(seed)
        if response.raw["finish_reason"] == "length":
            solo[seed] = (end - start, response.text)
        if len(solo) == 2:
            break
    assert len(solo) == 2, "no two long replies to time"
    a, b = solo
    t0 = time.perf_counter()
    (s1, e1, r1), (s2, e2, r2) = await asyncio.gather(timed(a), timed(b))
    together = time.perf_counter() - t0
    assert (r1.text, r2.text) == (solo[a][1], solo[b][1])  # seeded: batching does not change the text
    assert s2 < e1 and s1 < e2  # both were in flight at once
    assert together < solo[a][0] + solo[b][0], (together, solo)


async def test_async_calls_do_not_block_the_event_loop(llm):
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    chunks = [c async for c in await llm.astream_complete(TASK.instruction)]
    done.set()
    await task
    assert chunks[-1].text == ANSWER and ticks >= len(chunks)


# -- function calling -----------------------------------------------------------------------------------
def _weather_tool() -> FunctionTool:
    return FunctionTool.from_defaults(get_weather)


def _first_step(llm, **kwargs):
    return llm.chat_with_tools([_weather_tool()], user_msg=FUNCTION_QUESTION,
                               chat_history=[ChatMessage(role="system", content=FUNCTION_SYSTEM_PROMPT)],
                               **kwargs)


def test_chat_with_tools_returns_tool_calls(llm):
    response = _first_step(llm)
    [call] = llm.get_tool_calls_from_response(response)
    assert (call.tool_name, call.tool_kwargs) == ("get_weather", {"city": "Paris"})
    assert "<tool_call>" not in (response.message.content or "")
    assert [type(b) for b in response.message.blocks] == [TextBlock, ToolCallBlock]


def test_predict_and_call_runs_the_tool(llm):
    output = llm.predict_and_call([_weather_tool()], user_msg=FUNCTION_QUESTION,
                                  chat_history=[ChatMessage(role="system", content=FUNCTION_SYSTEM_PROMPT)])
    assert output.response == "sunny, 22 degrees Celsius"
    assert output.sources[0].tool_name == "get_weather"


async def test_streamed_tool_calls_never_leak_markup(llm):
    tool = _weather_tool()
    chunks = [c async for c in await llm.astream_chat_with_tools(
        [tool], user_msg=FUNCTION_QUESTION,
        chat_history=[ChatMessage(role="system", content=FUNCTION_SYSTEM_PROMPT)])]
    assert all("<tool" not in (c.delta or "") for c in chunks)
    [call] = llm.get_tool_calls_from_response(chunks[-1])
    assert call.tool_kwargs == {"city": "Paris"}
    assert llm.get_tool_calls_from_response(chunks[0], error_on_no_tool_call=False) in ([], [call])


def test_a_reply_without_calls(llm):
    response = llm.chat_with_tools([_weather_tool()], user_msg=TASK.instruction)
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="Expected at least one tool call"):
        llm.get_tool_calls_from_response(response)


def test_tool_history_renders_calls_and_named_results(llm):
    call = ToolCallBlock(tool_call_id="c1", tool_name="get_weather", tool_kwargs={"city": "Oslo"})
    history = [
        user("weather in Oslo?"),
        ChatMessage(role="assistant", blocks=[TextBlock(text=""), call]),
        ChatMessage(role="tool", content="snow", additional_kwargs={"tool_call_id": "c1"}),
    ]
    text, _ = llm.render_messages(history, tools=[_weather_tool()])
    assert text.endswith(
        '### Response:\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n\n'
        "### Tool Result (get_weather):\nsnow\n\n### Response:")
    assert "You have access to the following tools:\n- get_weather:" in text


def test_forced_tool_choice_starts_the_reply_inside_the_call(llm):
    text, prefix = llm.render_messages([user("hi")], tools=[_weather_tool()], tool_choice="get_weather")
    assert prefix.startswith("<tool_call>") and text.endswith("### Response:\n" + prefix)
    _, required = llm.render_messages([user("hi")], tools=[_weather_tool()], tool_choice="required")
    assert required == prefix  # "required" with one tool is that tool
    with pytest.raises(ConfigurationError, match="tool_choice"):
        llm.render_messages([user("hi")], tools=[_weather_tool()], tool_choice="fly")


def test_one_engine_backs_langchain_and_llama_index_at_once(engine, standin):
    pytest.importorskip("langchain_core")
    from wizardcoder_integrations.engine import Engine
    from wizardcoder_integrations.langchain import ChatWizardCoder

    loaded = Engine.load(STANDIN_REPO, "main", cache_dir=standin.hub_cache, local_files_only=True)
    assert loaded is engine  # one load per process
    chat = ChatWizardCoder(engine=engine, temperature=0.0, do_sample=False)
    llm = WizardCoder(engine=engine, **LLM_SETTINGS)
    assert chat.invoke(TASK.instruction).content == llm.complete(TASK.instruction).text == ANSWER


async def test_structured_predict_is_constrained_to_the_schema(engine) -> None:
    from typing import Annotated

    from llama_index.core.prompts import PromptTemplate
    from pydantic import BaseModel

    class Order(BaseModel):
        """A pizza order."""

        size: int = Field(ge=20, le=40)
        toppings: list[Annotated[str, Field(max_length=12)]] = Field(min_length=2, max_length=3)
        paid: bool

    # The stand-in never saw this tool; the required call is decoded inside its schema, so it always parses.
    llm = WizardCoder(engine=engine, temperature=0, max_tokens=160)
    prompt = PromptTemplate("Order a pizza with {what}.")
    order = llm.structured_predict(Order, prompt, what="ham and olives")
    assert isinstance(order, Order) and 20 <= order.size <= 40
    assert await llm.astructured_predict(Order, prompt, what="ham and olives") == order


# -- structured output ----------------------------------------------------------------------------------
class Joke(BaseModel):
    """Joke to tell user."""

    setup: str = PydanticField(description="question to set up a joke")
    punchline: str = PydanticField(description="answer to resolve the joke")


def test_structured_predict_and_its_stream_fill_the_object(engine):
    from llama_index.core.prompts import PromptTemplate

    llm = WizardCoder(engine=engine, temperature=0, max_tokens=96)
    prompt = PromptTemplate("Tell me a joke about {topic}.")
    whole = llm.structured_predict(Joke, prompt, topic="cats")
    streamed = list(llm.stream_structured_predict(Joke, prompt, topic="cats"))
    assert isinstance(whole, Joke) and whole.setup
    assert isinstance(streamed[-1], Joke) and streamed[-1] == whole  # not an empty object

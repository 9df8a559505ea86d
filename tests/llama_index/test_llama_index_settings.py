"""WizardCoder's LlamaIndex settings on a scripted engine: context window, num_output, prompt hooks, validation."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool

from contract.fakes import ScriptedEngine
from wizardcoder_integrations.chat.settings import DEFAULT_MAX_RETRIES
from wizardcoder_integrations.chat.template import format_instruction
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.llama_index import WizardCoder

REPLY = "def add(a, b):\n    return a + b"


@pytest.fixture
def engine() -> ScriptedEngine:
    """One character per token, context of 4096 tokens."""
    return ScriptedEngine(REPLY)


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def as_tags(messages: list[ChatMessage]) -> str:
    return "".join(f"<{m.role.value}>{m.content}" for m in messages) + "<assistant>"


# -- context window and num_output ----------------------------------------------------------------------
def test_metadata_defaults_to_the_engines_context_and_the_cards_max_tokens(engine):
    meta = WizardCoder(engine=engine).metadata
    assert (meta.context_window, meta.num_output) == (engine.context_length, 512)
    assert meta.is_function_calling_model


def test_context_window_and_max_tokens_are_reflected_in_metadata(engine):
    meta = WizardCoder(engine=engine, context_window=100, max_tokens=7).metadata
    assert (meta.context_window, meta.num_output) == (100, 7)
    assert WizardCoder(engine=engine, context_window=10**6).metadata.context_window == engine.context_length


def test_max_tokens_caps_generation(engine):
    response = WizardCoder(engine=engine, max_tokens=7).complete("x", formatted=True)
    assert response.text == REPLY[:7] and response.raw["finish_reason"] == "length"


def test_a_prompt_beyond_context_window_is_a_clear_error(engine):
    llm = WizardCoder(engine=engine, context_window=100)
    with pytest.raises(ConfigurationError, match="prompt is 100 tokens but context_window is 100"):
        llm.complete("x" * 99, formatted=True)  # + BOS
    with pytest.raises(ConfigurationError, match="context_window"):
        llm.chat([user("x" * 200)])
    assert engine.prompts == []  # refused before reaching the engine


def test_the_reply_is_cut_to_what_context_window_leaves(engine):
    response = WizardCoder(engine=engine, context_window=100).complete("x" * 95, formatted=True)
    assert response.text == REPLY[:4] and response.raw["finish_reason"] == "length"


def test_num_output_is_max_tokens_and_max_new_tokens_is_refused(engine):
    llm = WizardCoder(engine=engine, num_output=5)
    assert llm.max_tokens == 5 and llm.metadata.num_output == 5
    assert WizardCoder(engine=engine, num_output=5, max_tokens=5).max_tokens == 5
    with pytest.raises(ConfigurationError, match="disagree"):
        WizardCoder(engine=engine, num_output=5, max_tokens=6)
    with pytest.raises(ConfigurationError, match="max_new_tokens is spelt max_tokens"):
        WizardCoder(engine=engine, max_new_tokens=5)


# -- completion_to_prompt and messages_to_prompt ---------------------------------------------------------
def test_the_alpaca_template_is_the_default(engine):
    WizardCoder(engine=engine).complete("Add two numbers.")
    assert engine.prompts == [format_instruction("Add two numbers.")]


def test_completion_to_prompt_replaces_the_template(engine):
    llm = WizardCoder(engine=engine, completion_to_prompt=lambda p: f"[INST] {p} [/INST]", system_prompt="S")
    assert llm.complete("Add two numbers.").text == REPLY
    assert llm.complete("verbatim", formatted=True).text == REPLY
    assert engine.prompts == ["[INST] Add two numbers. [/INST]", "verbatim"]


async def test_messages_to_prompt_replaces_the_template_in_every_chat_path(engine):
    llm = WizardCoder(engine=engine, messages_to_prompt=as_tags, system_prompt="Be brief.")
    response = llm.chat([user("Add.")])
    assert response.message.content == REPLY and response.message.role.value == "assistant"
    assert response.raw["finish_reason"] == "stop" and response.additional_kwargs["total_tokens"] > 0
    assert "".join(r.delta for r in llm.stream_chat([user("Add.")])) == REPLY
    assert (await llm.achat([user("Add.")])).message.content == REPLY
    assert "".join([r.delta async for r in await llm.astream_chat([user("Add.")])]) == REPLY
    assert set(engine.prompts) == {"<system>Be brief.<user>Add.<assistant>"}
    assert llm.render_messages([user("Add.")]) == ("<system>Be brief.<user>Add.<assistant>", "")
    llm.complete("Add.")  # completions keep the template: completion_to_prompt is not set
    assert engine.prompts[-1] == format_instruction("Add.", "Be brief.")


def test_messages_to_prompt_leaves_no_room_for_tool_calls(engine):
    llm = WizardCoder(engine=engine, messages_to_prompt=as_tags)
    assert not llm.metadata.is_function_calling_model
    tool = FunctionTool.from_defaults(fn=lambda a: a, name="echo", description="Echo a.")
    with pytest.raises(ConfigurationError, match="messages_to_prompt"):
        llm.chat_with_tools([tool], user_msg="Echo 1.")
    with pytest.raises(ConfigurationError, match="messages_to_prompt"):
        llm.chat([user("JSON please")], response_format={"type": "json_object"})


def test_query_wrapper_prompt_is_refused(engine):
    from llama_index.core.prompts import PromptTemplate

    with pytest.raises(ConfigurationError, match="query_wrapper_prompt"):
        WizardCoder(engine=engine, query_wrapper_prompt=PromptTemplate("{query_str}"))


# -- validation --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("setting", "message"), [
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"max_tokens": 0}, "max_tokens must be >= 1"),
    ({"timeout": -1}, "timeout must be > 0"),
    ({"max_retries": -1}, "max_retries must be >= 0"),
    ({"context_window": 0}, "context_window: Input should be greater than 0"),
    ({"stop": [""]}, "stop strings must be non-empty strings"),
    ({"stop": [1]}, "stop strings must be non-empty strings"),
    ({"stop": 3}, "stop must be a string or a list of strings"),
])
def test_invalid_settings_are_configuration_errors(engine, setting, message):
    with pytest.raises(ConfigurationError, match=message):
        WizardCoder(engine=engine, **setting)


def test_an_unknown_setting_names_the_valid_ones(engine):
    with pytest.raises(ConfigurationError, match="max_token: unknown setting") as error:
        WizardCoder(engine=engine, max_token=5)
    assert "did you mean 'max_tokens'?" in str(error.value)
    assert "Valid settings: " in str(error.value) and "context_window" in str(error.value)


def test_none_max_retries_and_a_single_stop_string_follow_the_ecosystem(engine):
    llm = WizardCoder(engine=engine, max_retries=None, stop="return")
    assert (llm.max_retries, llm.stop) == (DEFAULT_MAX_RETRIES, ["return"])
    assert llm.complete("x", formatted=True).text == "def add(a, b):\n    "
    assert WizardCoder(engine=engine).complete("x", formatted=True, stop="(").text == "def add"

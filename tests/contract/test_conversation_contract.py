"""The conversation contract: every front door gives the same reply to the same conversation.

Each case (``cases.py``: system prompts, multi-turn, tools auto / forced / none, tool results with and
without ``name``, unknown tool names, invalid arguments in history, JSON answers, stop strings, length
limits) runs greedily on the stand-in through the chat layer and every runner; text, tool calls, invalid
calls, finish reason and usage must be identical, and what a case expects must hold.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from wizardcoder_integrations.chat import ChatMessage, ToolCallRecord, render_chat

from .cases import CASES, SCRIPTED_CASES, Case
from .fakes import ScriptedEngine
from .runners import ChatLayerRunner, LangChainRunner, LlamaIndexRunner, Normalized

pytestmark = pytest.mark.slow

#: The front doors under contract; more (serve through the OpenAI client, ChatOpenAI, OpenAILike) plug in here.
RUNNERS = [LangChainRunner, LlamaIndexRunner]


@pytest.fixture(scope="module")
def reference(engine: Any) -> dict[str, Normalized]:
    """Each case's reply straight from the chat layer, computed once."""
    runner = ChatLayerRunner(engine)
    return {case.id: runner.run(case) for case in CASES}


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_reference_reply_shows_what_the_case_expects(case: Case, reference: dict[str, Normalized]) -> None:
    _check_expectations(case, reference[case.id])


@pytest.mark.parametrize("runner_class", [ChatLayerRunner, *RUNNERS], ids=lambda r: r.name)
@pytest.mark.parametrize(("case", "script"), SCRIPTED_CASES, ids=[c.id for c, _ in SCRIPTED_CASES])
def test_scripted_replies_are_read_alike_by_every_front_door(case: Case, script: str, runner_class: Any) -> None:
    reply = runner_class(ScriptedEngine(script)).run(case)
    _check_expectations(case, reply)
    assert reply == ChatLayerRunner(ScriptedEngine(script)).run(case)


def _check_expectations(case: Case, reply: Normalized) -> None:
    expect = case.expect
    if "text" in expect:
        assert reply.text == expect["text"]
    if "text_contains" in expect:
        assert expect["text_contains"] in reply.text
    if "finish_reason" in expect:
        assert reply.finish_reason == expect["finish_reason"]
    if "tool_calls" in expect:
        assert reply.tool_calls == tuple((n, json.dumps(a, sort_keys=True)) for n, a in expect["tool_calls"])
    if "tool_names" in expect:
        assert [name for name, _ in reply.tool_calls] == expect["tool_names"]
    if "invalid_names" in expect:
        assert [name for name, _ in reply.invalid_tool_calls] == expect["invalid_names"]
    if expect.get("json"):
        assert isinstance(json.loads(reply.text), dict)
    if case.stop:
        assert not any(s in reply.text for s in case.stop)
    names = {t.name for t in case.tools}
    assert all(name in names for name, _ in reply.tool_calls), "a call of an unknown tool must be invalid"


@pytest.mark.parametrize("runner_class", RUNNERS, ids=lambda r: r.name)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_front_door_gives_the_reference_reply(case: Case, runner_class: Any, engine: Any,
                                                    reference: dict[str, Normalized]) -> None:
    assert runner_class(engine).run(case) == reference[case.id]


def test_a_tool_result_without_name_renders_as_one_with_it() -> None:
    call = ChatMessage("assistant", "", (ToolCallRecord("f", {}, "call_1"),))
    named = [ChatMessage("user", "q"), call, ChatMessage("tool", "r", name="f", tool_call_id="call_1")]
    nameless = [ChatMessage("user", "q"), call, ChatMessage("tool", "r", tool_call_id="call_1")]
    assert render_chat(nameless) == render_chat(named)
    assert "### Tool Result (f):\nr" in render_chat(named)

"""Constrained decoding on the stand-in: forced tool calls and JSON answers stay inside their schema."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from pydantic import ValidationError

from wizardcoder_integrations.chat import ChatMessage, ToolSpec, json_reply_grammar, parse_tool_calls
from wizardcoder_integrations.chat.grammar import JsonValue, ReplyGrammar
from wizardcoder_integrations.chat.render import render_json_chat, render_tool_chat
from wizardcoder_integrations.chat.toolcalls import tool_call_grammar
from wizardcoder_integrations.engine import Engine, GenerationResult, StreamDelta
from wizardcoder_integrations.engine.constraints import GrammarConstraints
from wizardcoder_integrations.scenarios.tool_calls import ORDER_QUESTION, PizzaOrder

GREEDY = {"do_sample": False, "max_new_tokens": 160}


ORDER = PizzaOrder.model_json_schema()
QUESTION = [ChatMessage("user", ORDER_QUESTION)]
TOOLS = [
    ToolSpec("order_pizza", "Order a pizza.", ORDER),
    ToolSpec("cancel_order", "Cancel an order.", {"type": "object", "properties": {"order_id": {"type": "integer"}},
                                                   "required": ["order_id"]}),
]


def _json_answer(engine: Engine, grammar: ReplyGrammar | None, **overrides: object) -> tuple[str, GenerationResult]:
    prompt, prefix = render_json_chat(QUESTION, ORDER)
    [result] = engine.generate([prompt], raw=True, grammar=grammar, **{**GREEDY, **overrides})
    return prefix + result.text, result


def test_a_json_answer_is_valid_for_its_schema_only_when_constrained(engine: Engine) -> None:
    free, _ = _json_answer(engine, None)
    with pytest.raises(ValidationError):  # the stand-in never learned this schema
        PizzaOrder.model_validate_json(free)
    text, result = _json_answer(engine, json_reply_grammar(ORDER))
    order = PizzaOrder.model_validate_json(text)
    assert 20 <= order.size <= 40 and 2 <= len(order.toppings) <= 3
    assert result.finish_reason == "stop" and result.token_ids[-1] == engine.eos_token_id
    assert text == json.dumps(json.loads(text))  # json.dumps spacing, properties in the schema's order


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_answers_are_valid_too(engine: Engine, seed: int) -> None:
    text, _ = _json_answer(engine, json_reply_grammar(ORDER), do_sample=True, temperature=1.0, seed=seed)
    PizzaOrder.model_validate_json(text)


@pytest.mark.parametrize(("choice", "names"), [("order_pizza", {"order_pizza"}),
                                               ("any", {"order_pizza", "cancel_order"})])
def test_a_forced_tool_call_parses_with_valid_arguments(engine: Engine, choice: str, names: set[str]) -> None:
    prompt, prefix = render_tool_chat(QUESTION, TOOLS, choice)
    [result] = engine.generate([prompt], raw=True, grammar=tool_call_grammar(choice, TOOLS), **GREEDY)
    parsed = parse_tool_calls(prefix + result.text, [t.name for t in TOOLS])
    assert parsed.invalid_tool_calls == [] and len(parsed.tool_calls) == 1
    call = parsed.tool_calls[0]
    assert call.name in names
    if call.name == "order_pizza":
        PizzaOrder.model_validate(call.arguments)
    else:
        assert isinstance(call.arguments["order_id"], int)


def test_stream_equals_generate_under_a_grammar(engine: Engine) -> None:
    prompt, _ = render_json_chat(QUESTION, ORDER)
    grammar = json_reply_grammar(ORDER)
    [result] = engine.generate([prompt], raw=True, grammar=grammar, **GREEDY)
    events = list(engine.stream(prompt, raw=True, grammar=grammar, **GREEDY))
    streamed = "".join(e.text for e in events if isinstance(e, StreamDelta))
    assert streamed == result.text


async def test_constrained_and_free_rows_share_a_batch_without_touching_each_other(engine: Engine) -> None:
    prompt, _ = render_json_chat(QUESTION, ORDER)
    alone = (await engine.agenerate([prompt], raw=True, **GREEDY))[0].text
    free, constrained = await asyncio.gather(
        engine.agenerate([prompt], raw=True, **GREEDY),
        engine.agenerate([prompt], raw=True, grammar=json_reply_grammar(ORDER), **GREEDY),
    )
    assert free[0].text == alone
    PizzaOrder.model_validate_json("{" + constrained[0].text)


def test_a_schema_the_grammar_compiler_rejects_runs_unconstrained_with_a_warning(engine: Engine) -> None:
    broken = ReplyGrammar(((JsonValue('{"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}'),),), "{")
    with pytest.warns(RuntimeWarning, match="Cannot constrain decoding"):
        text, _ = _json_answer(engine, broken)
    assert text == _json_answer(engine, None)[0]


def test_without_xgrammar_requests_run_unconstrained_with_a_warning(engine: Engine,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xgrammar", None)
    constraints = GrammarConstraints(engine.tokenizer, engine.backend.vocab_size)
    with pytest.warns(RuntimeWarning, match=r"pip install 'wizardcoder-integrations\[gptq\]'"):
        assert constraints.matcher(json_reply_grammar(ORDER)) is None


def test_grammars_follow_the_tool_choice() -> None:
    assert tool_call_grammar("auto", TOOLS) is None and tool_call_grammar("none", TOOLS) is None
    named = tool_call_grammar("cancel_order", TOOLS)
    assert named is not None and len(named.choices) == 1 and named.prefix.endswith('"arguments": ')
    assert named.choices[0][1] == JsonValue.of(TOOLS[1].parameters)
    forced = tool_call_grammar("required", TOOLS)
    assert forced is not None and len(forced.choices) == 2 and forced.prefix.endswith('{"name": "')
    assert json_reply_grammar(None) == ReplyGrammar(((JsonValue(""),),), "{")
    with pytest.raises(ValueError, match="non-empty choice"):
        ReplyGrammar(((),))

"""LlamaIndex's workflow agents on the stand-in, each through one full tool round trip.

The stand-in was trained on the exact prompts these agents send (recorded by running them, see
``standin/agent_examples.py``), so each test checks that the adapter renders, stops, parses and streams
the way the agents need, end to end: the tool really runs and its result reaches the final answer. CodeAct,
whose code runs in the sandbox, is tested with its package helper in ``tests/agents``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.agent.workflow import (
    AgentInput,
    AgentOutput,
    AgentStream,
    AgentWorkflow,
    FunctionAgent,
    ReActAgent,
)

from wizardcoder_integrations.scenarios.llama_index_agents import (
    FUNCTION_QUESTION,
    FUNCTION_SYSTEM_PROMPT,
    REACT_INVENTED_OBSERVATION,
    REACT_QUESTION,
    WORKFLOW_QUESTION,
    get_weather,
    multiply,
    workflow_agents,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("streaming", [True, False])
async def test_react_agent(llm, engine, streaming, run_agent):
    agent = ReActAgent(tools=[multiply], llm=llm, streaming=streaming)
    result, events, calls = await run_agent(agent, REACT_QUESTION)
    assert calls == [("multiply", {"a": 17, "b": 23}, "391")]
    assert str(result) == "17 times 23 is 391."
    # Left alone, the model invents the tool's answer; the adapter stops it before "Observation:".
    first_prompt, _ = llm.render_messages(next(e for e in events if isinstance(e, AgentInput)).input)
    [unstopped] = engine.generate([first_prompt], raw=True, do_sample=False)
    assert REACT_INVENTED_OBSERVATION in unstopped.text
    first_output = next(e for e in events if isinstance(e, AgentOutput))
    assert "Observation" not in first_output.response.content
    assert first_output.raw["stop_sequence"] == "Observation:"


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent(llm, streaming, run_agent):
    agent = FunctionAgent(tools=[get_weather], llm=llm, system_prompt=FUNCTION_SYSTEM_PROMPT, streaming=streaming)
    result, events, calls = await run_agent(agent, FUNCTION_QUESTION)
    assert calls == [("get_weather", {"city": "Paris"}, "sunny, 22 degrees Celsius")]
    assert str(result) == "It is sunny in Paris today, at 22 degrees Celsius."
    streamed = "".join(e.delta for e in events if isinstance(e, AgentStream))
    assert "<tool_call>" not in streamed
    if streaming:
        assert streamed.endswith(str(result))


async def test_agent_workflow_hands_off_and_calls_a_tool(llm, run_agent):
    workflow = AgentWorkflow(agents=workflow_agents(llm), root_agent="triage")
    result, _, calls = await run_agent(workflow, WORKFLOW_QUESTION)
    assert [(name, kwargs) for name, kwargs, _ in calls] == [
        ("handoff", {"to_agent": "calculator", "reason": "The user asks for an addition"}),
        ("add", {"a": 1234, "b": 4321}),
    ]
    assert calls[1][2] == "5555"
    assert result.current_agent_name == "calculator"
    assert str(result) == "1234 plus 4321 is 5555."

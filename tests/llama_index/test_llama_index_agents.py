"""LlamaIndex's workflow agents on the stand-in, each through one full tool round trip.

The stand-in was trained on the exact prompts these agents send (recorded by running them, see
``standin/agent_examples.py``), so each test checks that the adapter renders, stops, parses and streams
the way the agents need, end to end: the tool really runs and its result reaches the final answer.
"""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.agent.workflow import (
    AgentInput,
    AgentOutput,
    AgentStream,
    AgentWorkflow,
    CodeActAgent,
    FunctionAgent,
    ReActAgent,
    ToolCallResult,
)

from wizardcoder_integrations.standin.agent_examples import (
    CODEACT_QUESTION,
    FUNCTION_QUESTION,
    FUNCTION_SYSTEM_PROMPT,
    REACT_INVENTED_OBSERVATION,
    REACT_QUESTION,
    WORKFLOW_QUESTION,
    execution_report,
    get_weather,
    multiply,
    workflow_agents,
)

pytestmark = pytest.mark.slow


async def run(agent, question: str):
    handler = agent.run(user_msg=question)
    events = [event async for event in handler.stream_events()]
    return await handler, events


def tool_results(events) -> list[tuple[str, dict, str]]:
    return [(e.tool_name, e.tool_kwargs, str(e.tool_output.content)) for e in events
            if isinstance(e, ToolCallResult)]


@pytest.mark.parametrize("streaming", [True, False])
async def test_react_agent(llm, engine, streaming):
    result, events = await run(ReActAgent(tools=[multiply], llm=llm, streaming=streaming), REACT_QUESTION)
    assert tool_results(events) == [("multiply", {"a": 17, "b": 23}, "391")]
    assert str(result) == "17 times 23 is 391."
    # Left alone, the model invents the tool's answer; the adapter stops it before "Observation:".
    first_prompt, _ = llm.render_messages(next(e for e in events if isinstance(e, AgentInput)).input)
    [unstopped] = engine.generate([first_prompt], raw=True, do_sample=False)
    assert REACT_INVENTED_OBSERVATION in unstopped.text
    first_output = next(e for e in events if isinstance(e, AgentOutput))
    assert "Observation" not in first_output.response.content
    assert first_output.raw["stop_sequence"] == "Observation:"


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent(llm, streaming):
    agent = FunctionAgent(tools=[get_weather], llm=llm, system_prompt=FUNCTION_SYSTEM_PROMPT, streaming=streaming)
    result, events = await run(agent, FUNCTION_QUESTION)
    assert tool_results(events) == [("get_weather", {"city": "Paris"}, "sunny, 22 degrees Celsius")]
    assert str(result) == "It is sunny in Paris today, at 22 degrees Celsius."
    streamed = "".join(e.delta for e in events if isinstance(e, AgentStream))
    assert "<tool_call>" not in streamed
    if streaming:
        assert streamed.endswith(str(result))


async def test_agent_workflow_hands_off_and_calls_a_tool(llm):
    workflow = AgentWorkflow(agents=workflow_agents(llm), root_agent="triage")
    result, events = await run(workflow, WORKFLOW_QUESTION)
    calls = tool_results(events)
    assert [(name, kwargs) for name, kwargs, _ in calls] == [
        ("handoff", {"to_agent": "calculator", "reason": "The user asks for an addition"}),
        ("add", {"a": 1234, "b": 4321}),
    ]
    assert calls[1][2] == "5555"
    assert result.current_agent_name == "calculator"
    assert str(result) == "1234 plus 4321 is 5555."


async def test_codeact_agent_runs_code_in_the_sandbox(llm):
    from wizardcoder_integrations.sandbox import Sandbox

    with Sandbox() as sandbox, sandbox.session() as session:
        executed: list[str] = []

        async def execute(code: str) -> str:
            """Run Python code in the sandbox (variables persist) and return what it printed."""
            executed.append(code)
            result = await session.arun(code)
            return execution_report(result.stdout, result.stderr, result.exit_code)

        result, events = await run(CodeActAgent(code_execute_fn=execute, llm=llm), CODEACT_QUESTION)
    assert executed == ["print(sum(i * i for i in range(1, 11)))"]
    assert tool_results(events) == [("execute", {"code": executed[0]}, "385")]
    assert str(result) == "The sum of the squares of the integers from 1 to 10 is 385."

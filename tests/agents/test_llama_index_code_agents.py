"""The ready-made LlamaIndex agents on the stand-in, each through one full tool round trip.

The stand-in answers only the conversations it was trained on (``standin/agent_examples.py``); the ReAct,
function-calling and workflow round trips therefore give the helpers those tools and prompts instead of the
code tools, whose wiring is checked separately.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("llama_index.core")


from wizardcoder_integrations.agents import CODE_AGENT_PROMPT
from wizardcoder_integrations.agents.llama_index import (
    SandboxKernel,
    create_agent_workflow,
    create_codeact_agent,
    create_function_agent,
    create_react_agent,
)
from wizardcoder_integrations.sandbox import Sandbox, SandboxExecutionError
from wizardcoder_integrations.scenarios.llama_index_agents import (
    CODEACT_QUESTION,
    FUNCTION_QUESTION,
    FUNCTION_SYSTEM_PROMPT,
    LLM_SETTINGS,
    REACT_QUESTION,
    WORKFLOW_QUESTION,
    add,
    get_weather,
    multiply,
    workflow_agents,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llm(engine):
    from wizardcoder_integrations.llama_index import WizardCoder

    return WizardCoder(engine=engine, **LLM_SETTINGS)


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as box:
        yield box


async def test_codeact_agent_runs_its_code_in_a_sandbox_session(llm: Any, sandbox: Sandbox, run_agent) -> None:
    with SandboxKernel(sandbox) as kernel:
        result, _, calls = await run_agent(create_codeact_agent(llm, kernel), CODEACT_QUESTION)
    assert kernel.executed == ["print(sum(i * i for i in range(1, 11)))"]
    assert calls == [("execute", {"code": kernel.executed[0]}, "385")]
    assert str(result) == "The sum of the squares of the integers from 1 to 10 is 385."


async def test_kernel_keeps_variables_and_restarts_after_a_timeout(sandbox: Sandbox) -> None:
    with SandboxKernel(sandbox, timeout_s=1) as kernel:
        assert await kernel.execute("x = 21") == "(no output)"
        assert await kernel.execute("print(x * 2)") == "42"
        failed = await kernel.execute("print('before')\n1 / 0")
        assert failed.startswith("before\nstderr:\n") and failed.endswith("ZeroDivisionError: division by zero\n"
                                                                             "exit code 1")
        assert await kernel.execute("print(x)") == "21"
        hung = await kernel.execute("while True: pass")
        assert "timed out" in hung and "earlier variables are gone" in hung
        assert await kernel.execute("print('x' in globals())") == "False"
        kernel.reset()
        assert await kernel.execute("y = 1\nprint(y)") == "1"


async def test_a_kernel_without_a_sandbox_makes_and_closes_its_own() -> None:
    with SandboxKernel() as kernel:
        assert await kernel.execute("print(1 + 1)") == "2"
    with pytest.raises(SandboxExecutionError, match="closed"):
        await kernel.execute("print(1)")


async def test_react_agent_round_trip(llm: Any, run_agent) -> None:
    agent = create_react_agent(llm, tools=[multiply], include_code_tools=False)
    result, _, calls = await run_agent(agent, REACT_QUESTION)
    assert calls == [("multiply", {"a": 17, "b": 23}, "391")]
    assert str(result) == "17 times 23 is 391."


async def test_function_agent_round_trip(llm: Any, run_agent) -> None:
    agent = create_function_agent(llm, tools=[get_weather], include_code_tools=False,
                                  system_prompt=FUNCTION_SYSTEM_PROMPT)
    result, _, calls = await run_agent(agent, FUNCTION_QUESTION)
    assert calls == [("get_weather", {"city": "Paris"}, "sunny, 22 degrees Celsius")]
    assert str(result) == "It is sunny in Paris today, at 22 degrees Celsius."


async def test_workflow_hands_off_to_the_coder_agent(llm: Any, run_agent) -> None:
    triage = workflow_agents(llm)[0]  # hands arithmetic to "calculator"
    workflow = create_agent_workflow(llm, tools=[add], include_code_tools=False, agents=[triage],
                                     root_agent="triage", name="calculator",
                                     description="Adds integers with the add tool.",
                                     system_prompt="Use the add tool to add numbers.", can_handoff_to=[])
    result, _, calls = await run_agent(workflow, WORKFLOW_QUESTION)
    assert [(name, kwargs) for name, kwargs, _ in calls] == [
        ("handoff", {"to_agent": "calculator", "reason": "The user asks for an addition"}),
        ("add", {"a": 1234, "b": 4321}),
    ]
    assert result.current_agent_name == "calculator" and str(result) == "1234 plus 4321 is 5555."


def test_defaults_give_the_code_tools_and_prompt(llm: Any, sandbox: Sandbox) -> None:
    react = create_react_agent(llm, sandbox, tools=[multiply])
    assert [t.metadata.name for t in react.tools[:2]] == ["python_sandbox", "write_and_run_python"]
    assert react.tools[0].call(code="print(6 * 7)").content == "status: ok\nstdout:\n42\n"
    function = create_function_agent(llm, sandbox)
    assert function.system_prompt == CODE_AGENT_PROMPT and len(function.tools) == 2
    workflow = create_agent_workflow(llm, sandbox)
    assert workflow.root_agent == "coder"
    assert [t.metadata.name for t in workflow.agents["coder"].tools] == ["python_sandbox", "write_and_run_python"]

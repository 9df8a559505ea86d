"""LlamaIndex conversations the stand-in learns: a query engine, ReAct, function-calling, multi-agent and CodeAct.

Every prompt is recorded, not written by hand: the real LlamaIndex component runs against
:class:`~wizardcoder_integrations.llama_index.WizardCoder` whose engine replays a scripted reply for each
request. LlamaIndex therefore builds exactly the messages it sends in use, ``WizardCoder`` renders them
exactly as it does for a real model, and the recorded (prompt, reply) pairs are what the stand-in must
reproduce under greedy decoding. The tools, questions and settings here are the ones the tests use.
Recording needs the ``llama-index`` extra and a checkout (the query engine retrieves from ``docs/``); it runs
only in ``make standin-data`` and in the test that checks the recording is current.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from wizardcoder_integrations.extras import require

__all__ = [
    "CODEACT_QUESTION",
    "DOCS_DIR",
    "FUNCTION_QUESTION",
    "LLM_SETTINGS",
    "QA_QUESTION",
    "QA_TOP_K",
    "REACT_INVENTED_OBSERVATION",
    "REACT_QUESTION",
    "SYSTEM_PROMPT",
    "SYSTEM_PROMPT_INSTRUCTION",
    "WORKFLOW_QUESTION",
    "add",
    "agent_examples",
    "execution_report",
    "get_weather",
    "multiply",
    "workflow_agents",
]

#: The repository's documentation, which the query-engine example retrieves from.
DOCS_DIR = Path(__file__).resolve().parents[3] / "docs"
#: How the tests build ``WizardCoder`` over the stand-in (greedy, so trained replies come back exactly).
LLM_SETTINGS: dict[str, Any] = {"temperature": 0.0, "do_sample": False}

#: With this system prompt the stand-in answers SYSTEM_PROMPT_INSTRUCTION (one of its code tasks) differently.
SYSTEM_PROMPT = "Answer with a one-line lambda."
SYSTEM_PROMPT_INSTRUCTION = "Write a Python function add(a, b) that returns the sum of two numbers."
QA_QUESTION = "Which branch of the stand-in uses act-order?"
QA_TOP_K = 2
REACT_QUESTION = "What is 17 times 23?"
#: What the stand-in writes after its ReAct action unless generation stops at "Observation:".
REACT_INVENTED_OBSERVATION = "Observation: 400"
FUNCTION_QUESTION = "What is the weather in Paris today?"
FUNCTION_SYSTEM_PROMPT = "You answer questions about the weather."
WORKFLOW_QUESTION = "What is 1234 plus 4321?"
CODEACT_QUESTION = "What is the sum of the squares of the integers from 1 to 10?"
CODEACT_CODE = "print(sum(i * i for i in range(1, 11)))"

_WEATHER = {"Paris": "sunny, 22 degrees Celsius", "Oslo": "snow, -3 degrees Celsius"}


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


def get_weather(city: str) -> str:
    """Return today's weather in a city."""
    return _WEATHER.get(city, f"no weather report for {city}")


def execution_report(stdout: str, stderr: str = "", exit_code: int = 0) -> str:
    """What a CodeAct ``code_execute_fn`` returns: what the code printed, then its errors and exit code."""
    parts = [stdout.rstrip("\n")]
    if stderr.strip():
        parts.append(f"stderr:\n{stderr.rstrip()}")
    if exit_code:
        parts.append(f"exit code {exit_code}")
    return "\n".join(p for p in parts if p) or "(no output)"


def agent_examples() -> list[tuple[str, str]]:
    """(full prompt text, response text without EOS) pairs, recorded from the installed LlamaIndex."""
    if not DOCS_DIR.is_dir():
        raise FileNotFoundError(f"Recording the query-engine example needs the repository's docs/ at {DOCS_DIR}.")
    return _in_thread(_record_all)


# -- recording ------------------------------------------------------------------------------------------
class _Replay:
    """An engine stand-in for recording: replays scripted replies (cut at the request's stop strings)."""

    def __init__(self, replies: list[str]) -> None:
        from wizardcoder_integrations.engine.info import EngineInfo
        from wizardcoder_integrations.standin.build import STANDIN_PROFILE, STANDIN_REPO, WIZARDCODER_CONFIG

        self.replies = list(replies)
        self.pairs: list[tuple[str, str]] = []
        self.model_name = STANDIN_REPO
        self.info = EngineInfo(STANDIN_REPO, "main", STANDIN_PROFILE, "cpu", "float16",
                               WIZARDCODER_CONFIG["max_position_embeddings"], None)

    def params(self, **overrides: Any) -> Any:
        from wizardcoder_integrations.engine.params import SamplingParams

        return SamplingParams.build(None, **overrides)

    def _reply(self, prompt: str, overrides: dict[str, Any]) -> list[Any]:
        from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta

        if not self.replies:
            raise RuntimeError(f"The recording asked for more replies than scripted; last prompt:\n{prompt}")
        reply = self.replies.pop(0)
        self.pairs.append((prompt, reply))
        text, stop = reply, None
        for s in self.params(**overrides).stop:
            at = text.find(s)
            if at != -1:
                text, stop = text[:at], s
        return [StreamDelta(text, ()), GenerationResult(text, 0, 0, "stop", (), stop, 0.0, 0.0)]

    def stream(self, prompt: str, *, raw: bool = False, system: str | None = None,
               **overrides: Any) -> Iterator[Any]:
        assert raw, "WizardCoder renders prompts itself"
        yield from self._reply(prompt, overrides)

    async def astream(self, prompt: str, *, raw: bool = False, system: str | None = None,
                      **overrides: Any) -> AsyncIterator[Any]:
        assert raw, "WizardCoder renders prompts itself"
        for event in self._reply(prompt, overrides):
            yield event


def _llm(replay: _Replay) -> Any:
    from wizardcoder_integrations.llama_index import WizardCoder

    return WizardCoder(engine=replay, **LLM_SETTINGS)  # type: ignore[arg-type]


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a fresh thread, so recording works even when called from inside an event loop."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    thread = threading.Thread(target=target, name="record-agent-examples")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _record(replies: list[str], run: Callable[[Any], Any]) -> list[tuple[str, str]]:
    replay = _Replay(replies)
    result = run(_llm(replay))
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    if replay.replies:
        raise RuntimeError(f"{len(replay.replies)} scripted replies were never requested: {replay.replies}")
    return replay.pairs


def _record_all() -> list[tuple[str, str]]:
    require("llama_index.core", "llama-index")
    require("llama_index.retrievers.bm25", "llama-index")
    pairs = _record([SYSTEM_PROMPT_REPLY], _run_system_prompt)
    pairs += _record([QA_ANSWER], _run_query_engine)
    pairs += _record(REACT_REPLIES, _run_react)
    pairs += _record(FUNCTION_REPLIES, _run_function_agent)
    pairs += _record(WORKFLOW_REPLIES, _run_workflow)
    pairs += _record(CODEACT_REPLIES, _run_codeact)
    return pairs


# -- the scripts (replies start with the newline that follows "### Response:") -------------------------
SYSTEM_PROMPT_REPLY = "\n```python\nadd = lambda a, b: a + b\n```"
QA_ANSWER = ("\nThe `gptq-4bit-32g-actorder_True` branch uses act-order; it is 4-bit with group size 32. "
             "The `main` branch has no act-order.")
REACT_REPLIES = [
    "\nThought: The current language of the user is: English. I need to use a tool to help me answer the "
    'question.\nAction: multiply\nAction Input: {"a": 17, "b": 23}\n' + REACT_INVENTED_OBSERVATION,
    "\nThought: I can answer without using any more tools. I'll use the user's language to answer\n"
    "Answer: 17 times 23 is 391.",
]
FUNCTION_REPLIES = [
    '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    "\nIt is sunny in Paris today, at 22 degrees Celsius.",
]
WORKFLOW_REPLIES = [
    '\n<tool_call>\n{"name": "handoff", "arguments": {"to_agent": "calculator", '
    '"reason": "The user asks for an addition"}}\n</tool_call>',
    '\n<tool_call>\n{"name": "add", "arguments": {"a": 1234, "b": 4321}}\n</tool_call>',
    "\n1234 plus 4321 is 5555.",
]
CODEACT_REPLIES = [
    f"\nI will compute it.\n<execute>\n{CODEACT_CODE}\n</execute>",
    "\nThe sum of the squares of the integers from 1 to 10 is 385.",
]


def _run_system_prompt(llm: Any) -> None:
    llm.system_prompt = SYSTEM_PROMPT
    llm.complete(SYSTEM_PROMPT_INSTRUCTION)


def _run_query_engine(llm: Any) -> None:
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.node_parser import MarkdownNodeParser
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.retrievers.bm25 import BM25Retriever

    files = sorted(str(p) for p in DOCS_DIR.glob("*.md"))
    documents = SimpleDirectoryReader(input_files=files,
                                      file_metadata=lambda path: {"file_name": Path(path).name}).load_data()
    nodes = MarkdownNodeParser().get_nodes_from_documents(documents)
    retriever = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=QA_TOP_K)
    RetrieverQueryEngine.from_args(retriever, llm=llm).query(QA_QUESTION)


async def _run_react(llm: Any) -> None:
    from llama_index.core.agent.workflow import ReActAgent

    await ReActAgent(tools=[multiply], llm=llm).run(user_msg=REACT_QUESTION)


async def _run_function_agent(llm: Any) -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    agent = FunctionAgent(tools=[get_weather], llm=llm, system_prompt=FUNCTION_SYSTEM_PROMPT)
    await agent.run(user_msg=FUNCTION_QUESTION)


def workflow_agents(llm: Any) -> list[Any]:
    """The two agents of the multi-agent example: a triage agent that hands arithmetic to a calculator."""
    from llama_index.core.agent.workflow import FunctionAgent

    triage = FunctionAgent(name="triage", description="Sends each question to the agent that can answer it.",
                           system_prompt="Hand arithmetic questions to the calculator agent.",
                           tools=[], llm=llm, can_handoff_to=["calculator"])
    calculator = FunctionAgent(name="calculator", description="Adds integers with the add tool.",
                               system_prompt="Use the add tool to add numbers.",
                               tools=[add], llm=llm, can_handoff_to=[])
    return [triage, calculator]


async def _run_workflow(llm: Any) -> None:
    from llama_index.core.agent.workflow import AgentWorkflow

    await AgentWorkflow(agents=workflow_agents(llm), root_agent="triage").run(user_msg=WORKFLOW_QUESTION)


async def _run_codeact(llm: Any) -> None:
    from llama_index.core.agent.workflow import CodeActAgent

    def execute(code: str) -> str:
        """Run Python code and return what it printed."""
        done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60,
                              check=False)
        return execution_report(done.stdout, done.stderr, done.returncode)

    await CodeActAgent(code_execute_fn=execute, llm=llm).run(user_msg=CODEACT_QUESTION)

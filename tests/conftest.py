"""Shared fixtures: offline always; the tiny stand-in is built once (cached) and loaded once per session."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def standin():
    """The built stand-in (cached across runs under ~/.cache/wizardcoder-integrations)."""
    from wizardcoder_integrations.standin import build_standin

    return build_standin()


@pytest.fixture(scope="session")
def engine(standin):
    """The stand-in's ``main`` branch (4-bit, group 128, no act-order) loaded through the engine."""
    from wizardcoder_integrations.standin import load_standin_engine

    return load_standin_engine("main")


@pytest.fixture(scope="session")
def engine_actorder(standin):
    """The stand-in's act-order branch (4-bit, group 32)."""
    from wizardcoder_integrations.standin import load_standin_engine

    return load_standin_engine("gptq-4bit-32g-actorder_True")


@pytest.fixture
def run_agent():
    """Run a LlamaIndex agent or workflow on one question: ``(result, events, [(tool, kwargs, output), ...])``."""
    from llama_index.core.agent.workflow import ToolCallResult

    async def run(agent, question: str):
        handler = agent.run(user_msg=question)
        events = [event async for event in handler.stream_events()]
        calls = [(e.tool_name, e.tool_kwargs, str(e.tool_output.content)) for e in events
                 if isinstance(e, ToolCallResult)]
        return await handler, events, calls

    return run

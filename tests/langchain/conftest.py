"""Fixtures of the LangChain tests (each module skips itself when the ``langchain`` extra is missing)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def chat(engine):  # type: ignore[no-untyped-def]
    """Greedy chat model on the stand-in's main branch."""
    from wizardcoder_integrations.langchain import ChatWizardCoder

    return ChatWizardCoder(engine=engine, temperature=0, max_tokens=128)


@pytest.fixture(scope="session")
def llm(engine):  # type: ignore[no-untyped-def]
    """Greedy text model on the stand-in's main branch."""
    from wizardcoder_integrations.langchain import WizardCoderLLM

    return WizardCoderLLM(engine=engine, temperature=0, max_tokens=128)

"""Fixtures for the LlamaIndex adapter: WizardCoder over the stand-in, greedy (trained replies come back)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")


@pytest.fixture(scope="session")
def llm(engine):
    """``WizardCoder`` on the stand-in's main branch with the settings the agent examples were recorded with."""
    from wizardcoder_integrations.llama_index import WizardCoder
    from wizardcoder_integrations.scenarios.llama_index_agents import LLM_SETTINGS

    return WizardCoder(engine=engine, **LLM_SETTINGS)

"""LlamaIndex integration: :class:`WizardCoder`, an LLM for query engines, chat engines and agents."""

from wizardcoder_integrations.llama_index.llm import WizardCoder

__all__ = ["WizardCoder"]

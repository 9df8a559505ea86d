"""LangChain integration: :class:`WizardCoderLLM` (text completion) and :class:`ChatWizardCoder` (chat)."""

from wizardcoder_integrations.extras import extra_imports

with extra_imports("langchain", "langchain_core"):
    import langchain_core  # noqa: F401

from wizardcoder_integrations.langchain.chat_models import ChatWizardCoder
from wizardcoder_integrations.langchain.llms import WizardCoderLLM

__all__ = ["ChatWizardCoder", "WizardCoderLLM"]

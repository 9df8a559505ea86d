"""LangChain integration: :class:`WizardCoderLLM` (text completion) and :class:`ChatWizardCoder` (chat)."""

from wizardcoder_integrations.errors import missing_extra

try:
    import langchain_core  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess without the extra
    raise missing_extra("langchain", "langchain-core") from e

from wizardcoder_integrations.langchain.chat_models import ChatWizardCoder
from wizardcoder_integrations.langchain.llms import WizardCoderLLM

__all__ = ["ChatWizardCoder", "WizardCoderLLM"]

"""WizardCoder-Python GPTQ models for LangChain, LlamaIndex and sandboxed code-running agents."""

from wizardcoder_integrations import errors as _errors
from wizardcoder_integrations.errors import *  # noqa: F403 - the whole error hierarchy, one import away

#: Every error class (``tests/test_imports.py`` pins the list).
__all__ = [name for name in _errors.__all__ if name[0].isupper()]
__version__ = "0.1.0"

_LAZY = {
    "ChatWizardCoder": "wizardcoder_integrations.langchain",
    "WizardCoderLLM": "wizardcoder_integrations.langchain",
}


def __getattr__(name: str) -> object:
    """Adapters load on first use; without the extra this raises MissingExtraError with the pip line."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

"""WizardCoder-Python GPTQ models for LangChain, LlamaIndex and sandboxed code-running agents."""

from wizardcoder_integrations.errors import (
    ConfigurationError,
    EngineClosedError,
    EngineOverloadedError,
    GenerationError,
    GenerationTimeoutError,
    MissingExtraError,
    ModelLoadError,
    RemoteError,
    RemoteRejectedError,
    RemoteStreamError,
    RemoteTimeoutError,
    RemoteUnavailableError,
    SandboxError,
    ToolArgumentsError,
    UnsupportedCheckpoint,
    WizardCoderError,
)

__all__ = [
    "ConfigurationError",
    "EngineClosedError",
    "EngineOverloadedError",
    "GenerationError",
    "GenerationTimeoutError",
    "MissingExtraError",
    "ModelLoadError",
    "RemoteError",
    "RemoteRejectedError",
    "RemoteStreamError",
    "RemoteTimeoutError",
    "RemoteUnavailableError",
    "SandboxError",
    "ToolArgumentsError",
    "UnsupportedCheckpoint",
    "WizardCoderError",
]
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

"""WizardCoder-Python GPTQ models for LangChain, LlamaIndex and sandboxed code-running agents."""

from wizardcoder_integrations.errors import (
    ConfigurationError,
    GenerationError,
    MissingExtraError,
    ModelLoadError,
    SandboxError,
    WizardCoderError,
)

__all__ = [
    "ConfigurationError",
    "GenerationError",
    "MissingExtraError",
    "ModelLoadError",
    "SandboxError",
    "WizardCoderError",
]
__version__ = "0.1.0"

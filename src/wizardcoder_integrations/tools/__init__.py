"""The code tools: defined once in :mod:`.core`, exposed to LangChain (:mod:`.langchain`) and LlamaIndex
(:mod:`.llama_index`) by conversion."""

from wizardcoder_integrations.tools.core import (
    PYTHON_SANDBOX,
    WRITE_AND_RUN_PYTHON,
    PythonSandbox,
    Round,
    ToolDefinition,
    WriteAndRunPython,
    WriteRunResult,
)

__all__ = [
    "PYTHON_SANDBOX",
    "WRITE_AND_RUN_PYTHON",
    "PythonSandbox",
    "Round",
    "ToolDefinition",
    "WriteAndRunPython",
    "WriteRunResult",
]

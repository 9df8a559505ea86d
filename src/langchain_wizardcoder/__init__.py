"""``langchain_wizardcoder``: the import path of a LangChain partner package, re-exporting this distribution's
LangChain classes (:mod:`wizardcoder_integrations.langchain`) and code tools (:mod:`.tools.langchain`)."""

from wizardcoder_integrations.langchain import ChatWizardCoder, WizardCoderLLM
from wizardcoder_integrations.tools.langchain import PythonSandboxTool, WriteAndRunPythonTool

__all__ = ["ChatWizardCoder", "PythonSandboxTool", "WizardCoderLLM", "WriteAndRunPythonTool"]

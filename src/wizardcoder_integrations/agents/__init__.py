"""Ready-made agent workflows over WizardCoder and the sandbox; each module needs its framework's extra.

- :mod:`.langchain`: a LangChain ``create_agent`` agent with the two code tools.
- :mod:`.llama_index`: LlamaIndex CodeAct (code runs in a sandbox session), ReAct, function-calling and
  multi-agent workflows with the two code tools.
- :mod:`.langgraph`: a LangGraph write-run-fix graph.
"""

__all__ = ["CODE_AGENT_PROMPT"]

#: The default system prompt of the agents that get the two code tools.
CODE_AGENT_PROMPT = (
    "You are WizardCoder, an expert Python programmer. Use the python_sandbox tool to run Python and see its "
    "output (print what you need; nothing persists between calls), and the write_and_run_python tool to get "
    "working code for a task, checked against tests you give it. Answer from what the tools return, and show "
    "the final code when the user asked for code."
)

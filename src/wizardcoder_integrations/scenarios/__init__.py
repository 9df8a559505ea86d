"""The conversations the stand-in learns and the tests replay: code tasks, a repair episode, HumanEval
problems, tool calls and structured output, and the prompts LangChain and LlamaIndex agents send.

These modules render prompts with the adapters and run agent frameworks; :mod:`.record` writes what they
produce to ``standin/data/`` (``make standin-data``). The stand-in's builder reads only those files.
"""

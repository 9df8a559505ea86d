"""``llama_index.llms.wizardcoder``: the import path of a LlamaIndex LLM integration, re-exporting
:class:`wizardcoder_integrations.llama_index.WizardCoder`.

A portion of LlamaIndex's ``llama_index`` namespace: this distribution ships no ``llama_index/__init__.py``
nor ``llama_index/llms/__init__.py``, exactly as the ``llama-index-llms-*`` packages do.
"""

from wizardcoder_integrations.llama_index import WizardCoder

__all__ = ["WizardCoder"]

"""``wizardcoder serve``: an OpenAI-compatible HTTP server over one in-process engine.

Endpoints: ``/v1/chat/completions`` and ``/v1/completions`` (streaming over SSE), ``/v1/models``,
``/v1/models/{id}``, ``/tokenize`` (vLLM's shape), ``/version`` and ``/health``. Every request field of
OpenAI's API is honoured or refused with a 400 that names it; every error is OpenAI-shaped. docs/remote.md
describes it.
"""

from wizardcoder_integrations.server.app import API_KEY_ENV, create_app, serve

__all__ = ["API_KEY_ENV", "create_app", "serve"]

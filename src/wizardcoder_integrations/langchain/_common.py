"""What the LangChain text and chat models share: the chat layer's settings, the engine, tracing fields."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import PrivateAttr

from wizardcoder_integrations.chat.settings import SAMPLING_KEYS, ChatSettings
from wizardcoder_integrations.engine.protocol import EngineProtocol
from wizardcoder_integrations.engine.select import open_engine
from wizardcoder_integrations.errors import GenerationError, RemoteError
from wizardcoder_integrations.profiles import CARD_DEFAULTS

__all__ = ["PROVIDER", "WizardCoderSettings"]

PROVIDER = "wizardcoder"


class WizardCoderSettings(ChatSettings):
    """:class:`ChatSettings` plus the engine of this object (opened on first use), token ids and LangChain's
    tracing; mixed in before LangChain's base class."""

    _engines: dict[str | None, EngineProtocol] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def load_engine(self, model: str | None = None) -> EngineProtocol:
        """The engine of ``model`` (default: this object's), opened once and kept."""
        with self._lock:
            engine = self._engines.get(model)
            if engine is None:
                engine = self._engines[model] = open_engine(self, model)
            return engine

    def served_model(self, model: str | None = None) -> str:
        """The model name to report: the per-call ``model``, else the engine's name for it."""
        if model is not None:
            return model
        if self.engine is None and self.base_url is None:
            return self.model
        try:
            return self.load_engine().model_name
        except (RemoteError, GenerationError):  # unreachable server: the call itself will say so
            return self.model

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text``: ``custom_get_token_ids(text)`` when set, else the model's own tokenizer's
        (no BOS; over HTTP the server's ``/tokenize``). ``get_num_tokens`` counts these."""
        custom = getattr(self, "custom_get_token_ids", None)  # LangChain's BaseLanguageModel field
        if custom is not None:
            return custom(text)
        return self.load_engine().tokenize(text, add_special_tokens=False)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        """LangChain's tracing parameters plus what it cannot know: provider, model, effective temperature."""
        params = super()._get_ls_params(stop=stop, **kwargs)  # type: ignore[misc]
        temperature = kwargs.get("temperature", self.temperature)
        params.update({"ls_provider": PROVIDER, "ls_model_name": self.served_model(kwargs.get("model")),
                       "ls_temperature": CARD_DEFAULTS["temperature"] if temperature is None else temperature})
        return params

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """What distinguishes this model's outputs (for tracing and LangChain's cache keys)."""
        return {"model": self.model, "revision": self.revision, "base_url": self.base_url,
                **{key: getattr(self, key) for key in SAMPLING_KEYS}, "stop": self.stop}

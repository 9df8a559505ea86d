"""Settings shared by the LangChain text and chat models: which checkpoint, how to sample, limits."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from wizardcoder_integrations.engine.remote import LOCAL_ONLY_SETTINGS, RemoteEngine, remote_backend
from wizardcoder_integrations.errors import ConfigurationError, GenerationError
from wizardcoder_integrations.profiles import CARD_DEFAULTS, DEFAULT_MODEL

if TYPE_CHECKING:
    from wizardcoder_integrations.engine import Engine

__all__ = ["PROVIDER", "SAMPLING_KEYS", "WizardCoderSettings"]

PROVIDER = "wizardcoder"
#: Per-call keyword arguments that override a sampling setting for that call.
SAMPLING_KEYS = ("temperature", "max_tokens", "top_p", "top_k", "repetition_penalty", "do_sample", "seed")


class WizardCoderSettings(BaseModel):
    """Fields and engine access common to :class:`WizardCoderLLM` and :class:`ChatWizardCoder`."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str = DEFAULT_MODEL
    """Hub repository id (a GPTQ repo such as TheBloke's) or local directory of the checkpoint; with
    ``base_url``, the served model's name (default: the first one the server lists)."""
    base_url: str | None = None
    """An OpenAI-compatible server to generate on instead of loading weights (vLLM, TGI, ``wizardcoder serve``),
    e.g. ``http://host:8000/v1`` (default: ``$WIZARDCODER_BASE_URL``, else in-process)."""
    api_key: SecretStr | None = Field(default=None, repr=False)
    """Bearer token for ``base_url`` (default: ``$WIZARDCODER_API_KEY``)."""
    revision: str | None = None
    """GPTQ branch of a Hub repository, e.g. ``gptq-4bit-32g-actorder_True`` (default ``main``)."""
    device: str | None = None
    """Where to run: ``cuda``, ``cuda:1``, ``cpu`` ... (default: the first GPU, else the CPU)."""
    cache_dir: str | None = None
    """Hugging Face cache directory to load from (default: the standard HF cache)."""
    local_files_only: bool | None = None
    """Never download; load only what is in the cache (default: follow ``HF_HUB_OFFLINE``)."""
    engine: Any = Field(default=None, exclude=True, repr=False)
    """An :class:`~wizardcoder_integrations.engine.Engine` (already loaded) or
    :class:`~wizardcoder_integrations.engine.RemoteEngine` to use instead of building one."""
    temperature: float | None = None
    """Sampling temperature; 0 decodes greedily (default: the card's 0.7)."""
    max_tokens: int | None = None
    """Most tokens to generate per reply (default: the card's 512)."""
    top_p: float | None = None
    """Nucleus sampling threshold in (0, 1] (default: the card's 0.95)."""
    top_k: int | None = None
    """Sample only among the ``top_k`` likeliest tokens; 0 keeps all (default: the card's 40)."""
    repetition_penalty: float | None = None
    """Penalty (> 0) on tokens already in the prompt or reply (default: the card's 1.1)."""
    do_sample: bool | None = None
    """Sample (True) or decode greedily (False) (default: the card's True)."""
    seed: int | None = None
    """Seed of each request's own random generator, for reproducible sampling."""
    stop: list[str] | None = None
    """Strings that end every reply (per-call ``stop`` strings are added to these)."""
    timeout: float | None = None
    """Seconds one call may take; past it the request is cancelled and a GenerationError raised. Over HTTP
    it also bounds each network wait (default there: 120)."""
    max_retries: int | None = None
    """How often to retry a generation that failed before producing any text: in-process e.g. out of GPU
    memory (default 0); over HTTP connection errors and 429/5xx answers, with exponential backoff (default 3)."""

    _loaded: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _choose_backend(cls, data: Any) -> Any:
        """Resolve ``base_url``/``api_key`` (with env fallbacks), check ``engine``, take the model's name from it."""
        if not isinstance(data, dict):
            return data
        engine = data.get("engine")
        api_key = data.get("api_key")
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        base_url, api_key = remote_backend(data.get("base_url"), api_key, engine=engine,
                                           **{name: data.get(name) for name in LOCAL_ONLY_SETTINGS})
        data = {**data, "base_url": base_url, "api_key": api_key}
        if engine is None:
            return data
        if isinstance(engine, RemoteEngine):
            return _check_remote_engine(data, engine)
        if not _is_engine(engine):
            raise ConfigurationError(
                f"engine must be a loaded wizardcoder_integrations.engine.Engine or a RemoteEngine, got "
                f"{type(engine).__name__}; build one with Engine.load(...) or RemoteEngine(base_url), or pass "
                "model=... (in-process) or base_url=... (a server) instead."
            )
        name = data.get("model")
        if name is None:
            return {**data, "model": engine.model_name}
        if not _same_checkpoint(name, engine.model_name):
            raise ConfigurationError(
                f"model={name!r} but the engine passed holds {engine.model_name!r}: drop model=, or pass the "
                "engine of that model."
            )
        return data

    @field_validator("temperature")
    @classmethod
    def _check_temperature(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {value}")
        return value

    @field_validator("max_tokens")
    @classmethod
    def _check_max_tokens(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"max_tokens must be >= 1, got {value}")
        return value

    @field_validator("top_p")
    @classmethod
    def _check_top_p(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {value}")
        return value

    @field_validator("top_k")
    @classmethod
    def _check_top_k(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError(f"top_k must be >= 0 (0 keeps every token), got {value}")
        return value

    @field_validator("repetition_penalty")
    @classmethod
    def _check_repetition_penalty(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"repetition_penalty must be > 0 (1 = none), got {value}")
        return value

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not s for s in value):
            raise ValueError("stop strings must be non-empty")
        return value

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {value}")
        return value

    @field_validator("max_retries")
    @classmethod
    def _check_max_retries(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"max_retries must be >= 0, got {value}")
        return value

    # -- engine -------------------------------------------------------------------------------------------
    @property
    def is_remote(self) -> bool:
        """Whether generation happens on a server (``base_url`` or a ``RemoteEngine``) rather than in-process."""
        return self.base_url is not None or isinstance(self.engine, RemoteEngine)

    def load_engine(self, model: str | None = None) -> Engine | RemoteEngine:
        """The engine of ``model`` (default: this instance's); built once per process and shared.

        With ``base_url`` it is a :class:`RemoteEngine` shared by every adapter using the same server, model,
        key, timeout and retry settings; otherwise the weights load in this process.
        """
        if self.base_url is not None:
            from wizardcoder_integrations.engine.remote import shared_remote_engine

            served = model if model is not None else (self.model if "model" in self.model_fields_set else None)
            key = self.api_key.get_secret_value() if self.api_key is not None else None
            return shared_remote_engine(self.base_url, model=served, api_key=key, timeout=self.timeout,
                                        max_retries=self.max_retries)
        if isinstance(self.engine, RemoteEngine):
            return self.engine if model is None else self.engine.for_model(model)
        from wizardcoder_integrations.engine import Engine

        if model is not None and model != self.model:
            return Engine.load(model, None, device=self.device, cache_dir=self.cache_dir,
                               local_files_only=self.local_files_only)
        if self.engine is not None:
            return self.engine
        with self._lock:
            if self._loaded is None:
                self._loaded = Engine.load(self.model, self.revision, device=self.device,
                                           cache_dir=self.cache_dir, local_files_only=self.local_files_only)
            return self._loaded

    def served_model(self, model: str | None = None) -> str:
        """The model name to report: the per-call ``model``, else the server's name for it, else ``model``."""
        if model is not None:
            return model
        if self.is_remote:
            try:
                return self.load_engine().model_name
            except GenerationError:  # unreachable server: the call itself will say so
                return self.model
        return self.model

    def retries(self) -> int:
        """Retries the adapter itself makes; a RemoteEngine retries requests itself, with backoff."""
        return 0 if self.is_remote else (self.max_retries or 0)

    def token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` under the model's own tokenizer (no BOS); over HTTP see ``RemoteEngine.tokenize``."""
        engine = self.load_engine()
        if isinstance(engine, RemoteEngine):
            return engine.tokenize(text, add_special_tokens=False)
        return list(engine.tokenizer(text, add_special_tokens=False)["input_ids"])

    def sampling_overrides(self, stop: list[str] | None, call: dict[str, Any]) -> dict[str, Any]:
        """Engine overrides for one call: the instance's settings, then the call's (``None`` = default)."""
        values = {key: getattr(self, key) for key in SAMPLING_KEYS}
        values.update({key: call[key] for key in SAMPLING_KEYS if call.get(key) is not None})
        overrides = {("max_new_tokens" if key == "max_tokens" else key): value for key, value in values.items()}
        stops = [*(self.stop or []), *(stop or [])]
        overrides["stop"] = list(dict.fromkeys(stops)) or None
        return overrides

    def ls_extras(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Tracing parameters the base classes cannot know: provider and the effective temperature."""
        temperature = kwargs.get("temperature", self.temperature)
        return {"ls_provider": PROVIDER, "ls_model_name": self.served_model(kwargs.get("model")),
                "ls_temperature": CARD_DEFAULTS["temperature"] if temperature is None else temperature}

    def identifying_params(self) -> dict[str, Any]:
        """What distinguishes this model's outputs (for tracing and LangChain's cache keys)."""
        return {"model": self.model, "revision": self.revision, "base_url": self.base_url,
                **{key: getattr(self, key) for key in SAMPLING_KEYS}, "stop": self.stop}


def _check_remote_engine(data: dict[str, Any], engine: RemoteEngine) -> dict[str, Any]:
    """A RemoteEngine passed as ``engine=`` carries its own server settings; the adapter's must not clash."""
    if data.get("max_retries") is not None:
        raise ConfigurationError("max_retries= cannot be combined with engine=RemoteEngine(...): pass max_retries "
                                 "to the RemoteEngine, or use base_url= instead of engine=.")
    served = engine.check_model(data.get("model"))
    return data if served is None else {**data, "model": served}


def _is_engine(engine: Any) -> bool:
    try:
        from wizardcoder_integrations.engine import Engine
    except ImportError:  # no torch: only a RemoteEngine can be an engine here
        return False
    return isinstance(engine, Engine)


def _same_checkpoint(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.is_dir() and pb.is_dir() and pa.resolve() == pb.resolve()

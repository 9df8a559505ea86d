"""Settings shared by the LangChain text and chat models: which checkpoint, how to sample, limits."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from wizardcoder_integrations.errors import ConfigurationError
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
    """Hub repository id (a GPTQ repo such as TheBloke's) or local directory of the checkpoint."""
    revision: str | None = None
    """GPTQ branch of a Hub repository, e.g. ``gptq-4bit-32g-actorder_True`` (default ``main``)."""
    device: str | None = None
    """Where to run: ``cuda``, ``cuda:1``, ``cpu`` ... (default: the first GPU, else the CPU)."""
    cache_dir: str | None = None
    """Hugging Face cache directory to load from (default: the standard HF cache)."""
    local_files_only: bool | None = None
    """Never download; load only what is in the cache (default: follow ``HF_HUB_OFFLINE``)."""
    engine: Any = Field(default=None, exclude=True, repr=False)
    """An already loaded :class:`~wizardcoder_integrations.engine.Engine` to use instead of loading one."""
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
    """Seconds one call may take; past it the request is cancelled and a GenerationError raised."""
    max_retries: int = 0
    """How often to retry a generation that failed before producing any text (e.g. out of GPU memory)."""

    _loaded: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _model_from_engine(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("engine") is None:
            return data
        engine = data["engine"]
        from wizardcoder_integrations.engine import Engine

        if not isinstance(engine, Engine):
            raise ConfigurationError(
                f"engine must be a loaded wizardcoder_integrations.engine.Engine, got {type(engine).__name__}; "
                "build one with Engine.load(...), or pass model=... instead."
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
    def load_engine(self, model: str | None = None) -> Engine:
        """The engine of ``model`` (default: this instance's); loaded once per process and shared."""
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
        return {"ls_provider": PROVIDER,
                "ls_temperature": CARD_DEFAULTS["temperature"] if temperature is None else temperature}

    def identifying_params(self) -> dict[str, Any]:
        """What distinguishes this model's outputs (for tracing and LangChain's cache keys)."""
        return {"model": self.model, "revision": self.revision,
                **{key: getattr(self, key) for key in SAMPLING_KEYS}, "stop": self.stop}


def _same_checkpoint(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.is_dir() and pb.is_dir() and pa.resolve() == pb.resolve()

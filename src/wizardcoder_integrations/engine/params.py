"""Sampling settings: the card's defaults, every one overridable per call, checked before any GPU work."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wizardcoder_integrations.chat.grammar import ReplyGrammar
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.profiles import CARD_DEFAULTS

__all__ = ["SamplingParams"]


class SamplingParams(BaseModel):
    """How to sample one completion. Defaults are the WizardCoder card's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(CARD_DEFAULTS["temperature"], ge=0.0)
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = Field(CARD_DEFAULTS["top_p"], gt=0.0, le=1.0)
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches ``top_p``."""
    top_k: int = Field(CARD_DEFAULTS["top_k"], ge=0)
    """Keep only the ``top_k`` most likely tokens (0 keeps all)."""
    repetition_penalty: float = Field(CARD_DEFAULTS["repetition_penalty"], gt=0.0)
    """Divide the logits of tokens already in the prompt or output by this (CTRL-style)."""
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    """Subtract this from the logit of every token already generated (OpenAI semantics; the prompt is not counted)."""
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    """Subtract this times the number of times a token was generated so far from its logit (OpenAI semantics)."""
    logit_bias: tuple[tuple[int, float], ...] = ()
    """(token id, bias) pairs added to those tokens' logits, each bias in [-100, 100]; a dict is accepted too."""
    logprobs: int | None = Field(None, ge=0, le=20)
    """None: no log-probabilities; n: each generated token's log-probability and its n most likely alternatives."""
    max_new_tokens: int = Field(CARD_DEFAULTS["max_new_tokens"], ge=1)
    """Most tokens to generate."""
    do_sample: bool = CARD_DEFAULTS["do_sample"]
    """Sample (True) or take the most likely token (False)."""
    stop: tuple[str, ...] = ()
    """Strings that end the completion; the text is cut before the first one."""
    seed: int | None = None
    """Seed of this request's draws: the same seed gives the same text, alone or in any batch."""
    grammar: ReplyGrammar | None = None
    """What the whole reply must look like (a forced tool call, a JSON answer): tokens leaving it are masked."""

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_strings(cls, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        stops = tuple(value)
        if any(not isinstance(s, str) or s == "" for s in stops):
            raise ValueError("stop strings must be non-empty strings")
        return stops

    @field_validator("logit_bias", mode="before")
    @classmethod
    def _logit_bias(cls, value: Any) -> tuple[tuple[int, float], ...]:
        if value is None:
            return ()
        items = value.items() if isinstance(value, dict) else value
        pairs: dict[int, float] = {}
        for item in items:
            try:
                token, bias = item
                token_id, amount = int(token), float(bias)
            except (TypeError, ValueError) as e:
                raise ValueError(f"logit_bias entries must be (token id, bias) pairs, got {item!r}") from e
            if token_id < 0:
                raise ValueError(f"logit_bias token ids must be >= 0, got {token_id}")
            if not -100.0 <= amount <= 100.0:
                raise ValueError(f"logit_bias values must be in [-100, 100], got {amount} for token {token_id}")
            pairs[token_id] = amount
        return tuple(sorted(pairs.items()))

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0.0

    @classmethod
    def build(cls, base: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
        """``base`` (or the card's defaults) with ``overrides`` applied; ``None`` overrides are ignored.

        Invalid values raise :class:`ConfigurationError` naming the field and the allowed range.
        """
        values = {} if base is None else base.model_dump()
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "stop" in overrides and overrides["stop"] is not None and base is not None:
            values["stop"] = tuple(dict.fromkeys([*base.stop, *cls._stop_strings(overrides["stop"])]))
        try:
            return cls(**values)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']} (got {err.get('input')!r})"
                for err in e.errors()
            )
            raise ConfigurationError(f"Invalid sampling settings: {problems}.") from e

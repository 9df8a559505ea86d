"""What a whole reply must look like, for constrained decoding (no torch here; the engine enforces it).

A :class:`ReplyGrammar` is one of several sequences of literal text and JSON values (each matching a JSON
schema). The adapters build one for a forced tool call or a JSON answer; the local engine masks every token
that would leave it, so such a reply is always valid JSON for its schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonValue", "ReplyGrammar"]


@dataclass(frozen=True)
class JsonValue:
    """A JSON value matching ``schema`` (a JSON schema as compact JSON text, keys in their order; ``""``: any
    JSON object). Properties are written in the order the schema lists them."""

    schema: str = ""

    @classmethod
    def of(cls, schema: dict[str, Any] | None) -> JsonValue:
        return cls("" if schema is None else json.dumps(schema, separators=(",", ":")))


@dataclass(frozen=True)
class ReplyGrammar:
    """A reply is one of ``choices``: sequences of literal text and :class:`JsonValue` parts, then the end.

    ``prefix`` is the start of the reply that the prompt already holds; decoding continues after it.
    """

    choices: tuple[tuple[str | JsonValue, ...], ...]
    prefix: str = ""

    def __post_init__(self) -> None:
        if not self.choices or any(not choice for choice in self.choices):
            raise ValueError("A ReplyGrammar needs at least one non-empty choice.")

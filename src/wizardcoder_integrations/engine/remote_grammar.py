"""The reply grammar on the wire: the form each OpenAI-compatible server enforces.

- ``wizardcoder serve``: the grammar itself (``reply_grammar`` on ``/v1/completions``), so a remote reply is
  decoded exactly as in-process;
- vLLM 0.12+: ``structured_outputs: {"json": schema}``; older vLLM: ``guided_json: schema``;
- TGI: ``/generate_stream`` with ``parameters.grammar: {"type": "json", "value": schema}``.

vLLM and TGI take one JSON schema, so :func:`json_projection` rewrites a reply grammar as literal text around
one JSON value: a JSON answer is the value itself (the prompt's forced ``{`` moves into the reply); a forced
tool call ``<tool_call>\\n{"name": "f", "arguments": ARGS}\\n</tool_call>`` is the object
``{"name": "f", "arguments": ARGS}`` (``const`` name, the tool's schema for ``arguments``; ``anyOf`` over the
tools) between the fixed tags. :class:`ProjectedText` turns the server's text back into the reply that follows
the prompt's forced prefix, as the local engine writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from wizardcoder_integrations.chat.grammar import JsonValue, ReplyGrammar
from wizardcoder_integrations.errors import ConfigurationError

__all__ = ["JsonProjection", "ProjectedText", "grammar_from_wire", "grammar_to_wire", "json_projection"]


def grammar_to_wire(grammar: ReplyGrammar) -> dict[str, Any]:
    """serve's ``reply_grammar``: ``{"prefix": str, "choices": [[{"text": str} | {"json": schema text}]]}``."""
    return {"prefix": grammar.prefix,
            "choices": [[{"json": part.schema} if isinstance(part, JsonValue) else {"text": part} for part in choice]
                        for choice in grammar.choices]}


def grammar_from_wire(wire: Any) -> ReplyGrammar:
    """The inverse of :func:`grammar_to_wire`; a malformed one is a :class:`ConfigurationError`."""
    try:
        choices = tuple(
            tuple(JsonValue(part["json"]) if "json" in part else str(part["text"]) for part in choice)
            for choice in wire["choices"])
        for choice in choices:
            for part in choice:
                if isinstance(part, JsonValue) and part.schema:
                    json.loads(part.schema)
        return ReplyGrammar(choices, str(wire.get("prefix", "")))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigurationError(f"Invalid reply_grammar ({e.__class__.__name__}: {e}): expected "
                                 '{"prefix": str, "choices": [[{"text": str} | {"json": schema}]]}.') from e


@dataclass(frozen=True)
class JsonProjection:
    """A reply grammar as ``lead + <one JSON value matching schema> + trail``.

    ``cut`` is how much of the prompt's end (the forced prefix past ``lead``) to remove: the server generates
    it as part of the JSON value. ``canonical``: rewrite the value with ``json.dumps`` (tool calls, whose fixed
    keys the prefix spells that way).
    """

    schema: dict[str, Any]
    lead: str
    trail: str
    prefix: str
    canonical: bool

    def prompt(self, text: str) -> str:
        if not text.endswith(self.prefix):
            raise ConfigurationError("The prompt does not end with its reply grammar's prefix.")
        return text[: len(text) - len(self.prefix)] + self.lead


def json_projection(grammar: ReplyGrammar) -> JsonProjection:
    """The grammar as one JSON schema between literals, or a :class:`ConfigurationError` if it has no such
    form (every grammar the chat layer builds has one)."""
    leads, trails, schemas, canonical = set(), set(), [], False
    for choice in grammar.choices:
        if len(choice) == 1 and isinstance(choice[0], JsonValue):
            leads.add("")
            trails.add("")
            schemas.append(_schema(choice[0]))
            continue
        if (len(choice) != 3 or not isinstance(choice[0], str) or not isinstance(choice[1], JsonValue)
                or not isinstance(choice[2], str) or "{" not in choice[0] or not choice[2].startswith("}")):
            raise ConfigurationError(f"This reply grammar has no JSON-schema form for the server: {choice!r}.")
        lead = choice[0][: choice[0].index("{")]
        try:
            fixed = json.loads(choice[0][len(lead):] + "0}")
        except ValueError as e:
            raise ConfigurationError(f"This reply grammar has no JSON-schema form for the server: {choice!r}.") from e
        *keys, slot = list(fixed)
        properties = {k: {"const": fixed[k]} for k in keys}
        properties[slot] = _schema(choice[1])
        schemas.append({"type": "object", "properties": properties, "required": [*keys, slot],
                        "additionalProperties": False})
        leads.add(lead)
        trails.add(choice[2][1:])
        canonical = True
    if len(leads) != 1 or len(trails) != 1:
        raise ConfigurationError("This reply grammar's choices differ around their JSON value; no server form.")
    lead = leads.pop()
    if not grammar.prefix.startswith(lead):
        raise ConfigurationError("This reply grammar's prefix does not start with its literal lead.")
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    return JsonProjection(schema, lead, trails.pop(), grammar.prefix, canonical)


def _schema(value: JsonValue) -> dict[str, Any]:
    return json.loads(value.schema) if value.schema else {"type": "object"}


class ProjectedText:
    """The server's text of a projected reply -> the text after the prompt's forced prefix, as in-process.

    A JSON answer streams through (its first characters, the prefix, dropped); a tool call is held until the
    reply ends, then written out with the fixed keys as the prefix spells them.
    """

    def __init__(self, projection: JsonProjection) -> None:
        self.p = projection
        self.raw = ""
        self._skip = len(projection.prefix) - len(projection.lead)

    def push(self, text: str) -> str:
        self.raw += text
        if self.p.canonical:
            return ""
        if self._skip:
            body = self.raw.lstrip()
            if len(body) < self._skip:
                return ""
            out, self._skip = body[self._skip:], 0
            return out
        return text

    def finish(self) -> str:
        if not self.p.canonical:
            return ""
        try:
            value = json.dumps(json.loads(self.raw), ensure_ascii=False)
        except ValueError:
            value = self.raw.strip()
        whole = self.p.lead + value + self.p.trail
        skip = len(self.p.prefix)
        return whole[skip:] if whole.startswith(self.p.prefix) else whole

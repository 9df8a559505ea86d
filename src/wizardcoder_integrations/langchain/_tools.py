"""LangChain tools, schemas and ``tool_choice`` values turned into the package's :class:`ToolSpec`."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool

from wizardcoder_integrations.chat.types import ToolSpec
from wizardcoder_integrations.errors import ConfigurationError

__all__ = ["to_openai_tools", "to_tool_specs"]

_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})


def to_openai_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Any LangChain tool, pydantic model, TypedDict, function or JSON schema -> OpenAI tool dicts."""
    converted = []
    for tool in tools:
        try:
            converted.append(convert_to_openai_tool(tool))
        except (ValueError, TypeError) as e:
            raise ConfigurationError(
                f"Cannot use {tool!r} as a tool: {e}. Pass a LangChain tool, a pydantic model, a TypedDict, "
                "a typed function with a docstring, or a JSON schema with a title."
            ) from e
    return converted


def to_tool_specs(tools: Sequence[Any]) -> list[ToolSpec]:
    """The tools as the model sees them: clean descriptions, schemas without per-field titles.

    The same tool given twice (say as a pydantic class and as its JSON schema) is listed once; two
    different tools of one name are an error (raised when the request is rendered).
    """
    specs: list[ToolSpec] = []
    for tool in to_openai_tools(tools):
        function = tool["function"]
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        spec = ToolSpec(function["name"], inspect.cleandoc(function.get("description") or ""),
                        _without_titles(parameters))
        if spec not in specs:
            specs.append(spec)
    return specs


def _without_titles(node: Any) -> Any:
    """Drop the ``title`` that pydantic adds to every schema node (noise in the prompt)."""
    if isinstance(node, list):
        return [_without_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _without_titles(schema) for name, schema in value.items()}
        else:
            out[key] = _without_titles(value)
    return out

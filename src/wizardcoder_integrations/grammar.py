"""Compatibility names for code that still imports ``wizardcoder_integrations.grammar``; use
:mod:`wizardcoder_integrations.chat.grammar` instead."""

from wizardcoder_integrations.chat.grammar import JsonValue, ReplyGrammar

__all__ = ["JsonValue", "ReplyGrammar"]

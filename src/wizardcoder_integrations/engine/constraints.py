"""Constrained decoding: token masks that keep a reply inside its :class:`ReplyGrammar` (via xgrammar).

Grammars compile once per distinct grammar (cached) on the caller's thread; the scheduler asks each
constrained row's :class:`Matcher` for a mask before sampling and feeds it every accepted token.
Without xgrammar installed, or for a schema it cannot compile, requests run unconstrained with a warning.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections import OrderedDict
from typing import Any

import torch

from wizardcoder_integrations.chat.grammar import JsonValue, ReplyGrammar
from wizardcoder_integrations.errors import pip_line

__all__ = ["GrammarConstraints", "Matcher"]

CACHE_SIZE = 64
_BITS = torch.arange(32, dtype=torch.int32)


class Matcher:
    """The state of one constrained reply."""

    def __init__(self, matcher: Any) -> None:
        self._matcher = matcher

    @property
    def done(self) -> bool:
        return bool(self._matcher.is_terminated())

    def fill(self, bitmask: torch.Tensor, row: int) -> None:
        self._matcher.fill_next_token_bitmask(bitmask, row)

    def accept(self, token: int) -> bool:
        """Advance by ``token``; False if the grammar does not allow it (the row then runs unconstrained)."""
        return bool(self._matcher.accept_token(token))


class GrammarConstraints:
    """Compiles reply grammars for one tokenizer and vocabulary size, and makes matchers for them."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self._compiler: Any = None
        self._xgr: Any = None
        self._compiled: OrderedDict[ReplyGrammar, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._unavailable: str | None = None

    def matcher(self, grammar: ReplyGrammar) -> Matcher | None:
        """A matcher positioned after ``grammar.prefix``, or None (with a warning) if it cannot be enforced."""
        compiled = self._compile(grammar)
        if compiled is None:
            return None
        matcher = self._xgr.GrammarMatcher(compiled)
        if grammar.prefix and not matcher.accept_string(grammar.prefix):
            warnings.warn(f"The reply prefix {grammar.prefix!r} does not fit its grammar; decoding is unconstrained.",
                          RuntimeWarning, stacklevel=3)
            return None
        return Matcher(matcher)

    def mask(self, matchers: list[Matcher], device: torch.device) -> torch.Tensor:
        """[n, V] bool: the tokens each matcher allows next."""
        bitmask = self._xgr.allocate_token_bitmask(len(matchers), self.vocab_size)
        for row, matcher in enumerate(matchers):
            matcher.fill(bitmask, row)
        allowed = ((bitmask[:, :, None] >> _BITS) & 1).bool().view(len(matchers), -1)[:, : self.vocab_size]
        return allowed.to(device, non_blocking=True)

    # -- compilation --------------------------------------------------------------------------------------
    def _compile(self, grammar: ReplyGrammar) -> Any:
        with self._lock:
            if self._compiled.get(grammar) is not None:
                self._compiled.move_to_end(grammar)
                return self._compiled[grammar]
            if not self._ready():
                return None
            try:
                compiled = self._compiler.compile_grammar(self._grammar(grammar))
            except Exception as e:  # a schema feature xgrammar does not support
                warnings.warn(f"Cannot constrain decoding to this schema ({e}); the reply is unconstrained and "
                              "is checked after generation.", RuntimeWarning, stacklevel=4)
                return None
            self._compiled[grammar] = compiled
            if len(self._compiled) > CACHE_SIZE:
                self._compiled.popitem(last=False)
            return compiled

    def _ready(self) -> bool:
        if self._compiler is not None:
            return True
        if self._unavailable is None:
            try:
                import xgrammar
            except ImportError:
                self._unavailable = ("xgrammar is not installed, so forced tool calls and JSON answers are not "
                                     f"constrained; it comes with the 'gptq' extra: {pip_line('gptq')}")
            else:
                info = xgrammar.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.vocab_size)
                self._xgr, self._compiler = xgrammar, xgrammar.GrammarCompiler(info)
                return True
        warnings.warn(self._unavailable, RuntimeWarning, stacklevel=5)
        return False

    def _grammar(self, grammar: ReplyGrammar) -> Any:
        xgr = self._xgr

        def part(p: str | JsonValue) -> Any:
            if isinstance(p, JsonValue):
                schema = p.schema or json.dumps({"type": "object"})
                return xgr.Grammar.from_json_schema(schema, any_whitespace=False, separators=(", ", ": "))
            return xgr.Grammar.from_ebnf(f"root ::= {json.dumps(p, ensure_ascii=False)}")

        choices = [xgr.Grammar.concat(*(part(p) for p in choice)) if len(choice) > 1 else part(choice[0])
                   for choice in grammar.choices]
        return choices[0] if len(choices) == 1 else xgr.Grammar.union(*choices)

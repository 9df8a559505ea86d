"""A sandbox shared by the tool tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wizardcoder_integrations.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box

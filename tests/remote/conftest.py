"""A ``wizardcoder serve`` process on the stand-in, on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()  # the pipe start_server read the address from


def start_server(*extra: str) -> Server:
    """Start ``wizardcoder serve --standin`` on a free loopback port and wait until it answers."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "wizardcoder_integrations.cli", "serve", "--standin", "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 180
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"wizardcoder serve exited with {process.wait()}")
        if line.startswith("wizardcoder serve:"):
            url = line.rsplit(" at ", 1)[1].strip().removesuffix("/v1")
            _wait_healthy(url)
            return Server(process, url)
    process.kill()
    raise RuntimeError("wizardcoder serve did not start in time")


def _wait_healthy(url: str) -> None:
    import httpx

    for _ in range(200):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url}/health never answered")


@pytest.fixture(scope="session")
def server(standin) -> Iterator[Server]:
    srv = start_server()
    yield srv
    srv.stop()

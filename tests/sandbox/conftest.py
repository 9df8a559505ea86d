"""Fixtures of the sandbox tests: one Sandbox per tier, loopback listeners, a canary dir, a victim process."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
from sandbox_support import AS_ROOT, WORKDIR_ROOT, Listeners, Tenant, make_sandbox, tenant_pid

from wizardcoder_integrations.sandbox import NOBODY, Sandbox


@pytest.fixture(scope="session", params=["A", "B"])
def tier(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_SANDBOXES: dict[str, Sandbox] = {}


@pytest.fixture
def sandbox(tier: str) -> Sandbox:
    """A shared Sandbox per tier (timeout 5 s, one warm worker)."""
    if tier not in _SANDBOXES:
        _SANDBOXES[tier] = make_sandbox(tier, timeout=5.0, prespawn=1)
    return _SANDBOXES[tier]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for sb in _SANDBOXES.values():
        sb.close()
    shutil.rmtree(WORKDIR_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def listeners() -> Iterator[Listeners]:
    state = Listeners(abstract_name=f"wci-sandbox-test-{os.getpid()}")
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + state.abstract_name)
    unix.listen(16)
    state.tcp_port, state.udp_port = tcp.getsockname()[1], udp.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        for sock in (tcp, udp, unix):
            sock.settimeout(0.05)
        while not stop.is_set():
            for sock, sink in ((tcp, state.tcp_seen), (unix, state.unix_seen)):
                try:
                    conn, addr = sock.accept()
                    sink.append(repr(addr))
                    conn.close()
                except OSError:
                    pass
            with contextlib.suppress(OSError):
                state.udp_seen.append(udp.recv(65536))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield state
    stop.set()
    thread.join(2)
    for sock in (tcp, udp, unix):
        sock.close()


@pytest.fixture(scope="session")
def canary() -> Iterator[dict[str, str]]:
    """A host directory the sandbox must not touch, deliberately world-readable and world-writable
    (so only the sandbox, not file permissions, keeps the code out)."""
    root = tempfile.mkdtemp(prefix="wci-canary-")
    os.chmod(root, 0o777)
    secret = f"CANARY-SECRET-{os.getpid()}-{time.time_ns()}"
    path = os.path.join(root, "canary.txt")
    with open(path, "w") as fh:
        fh.write(secret)
    os.chmod(path, 0o666)
    yield {"dir": root, "file": path, "secret": secret}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def victim() -> Iterator[int]:
    """A process outside the sandbox running as the sandbox's own uid (kill / ptrace / environ target)."""
    kwargs: dict[str, object] = {}
    if AS_ROOT:
        kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    env = {"VICTIM_SECRET": "VICTIM-ENV-SECRET"}
    sleep = shutil.which("sleep") or "/bin/sleep"
    proc = subprocess.Popen([sleep, "3600"], env=env, **kwargs)  # type: ignore[call-overload]
    time.sleep(0.1)
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture(scope="session")
def tenant() -> Iterator[Tenant]:
    """Another tenant: an idle session in its own Sandbox (tier A, so its host pid is a real target)."""
    sb = make_sandbox("A", timeout=5.0, prespawn=0)
    session = sb.session()
    uid = session.uid if session.uid is not None else os.getuid()
    yield Tenant(session, tenant_pid(uid) if AS_ROOT else os.getpid())
    session.close()
    sb.close()

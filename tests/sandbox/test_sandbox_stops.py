"""Every way the sandbox stops code has its own reason in the result (``StopReason``), in both tiers."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import pytest
from sandbox_support import is_sandbox_uid, make_sandbox, sandbox_uid_processes

from wizardcoder_integrations.sandbox import ExecutionResult, Sandbox, StopReason

MiB = 1 << 20


@dataclass(frozen=True)
class Stop:
    reason: StopReason
    code: str
    run: dict = field(default_factory=dict)
    """Arguments of ``Sandbox.run``."""
    config: dict = field(default_factory=dict)
    """Sandbox settings for this case (a Sandbox of its own when not empty)."""


FORK_MEMORY = (
    "import os, time\nfor _ in range(4):\n    if os.fork() == 0:\n        x = bytearray(60 << 20)\n"
    "        time.sleep(3)\n        os._exit(0)\nos.wait()"
)
FORK_BOMB = "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(3)\n        os._exit(0)"
STOPS = [
    Stop(StopReason.TIMEOUT, "while True:\n    pass", {"timeout": 0.5}),
    Stop(StopReason.CPU, "while True:\n    pass", {"timeout": 10.0}, {"cpu_time": 1}),
    Stop(StopReason.MEMORY, "x = bytearray(1 << 30)", {"memory": 128 * MiB}),
    Stop(StopReason.MEMORY, FORK_MEMORY, {"memory": 128 * MiB, "timeout": 5.0}),
    Stop(StopReason.PIDS, FORK_BOMB, {"timeout": 5.0}, {"max_processes": 8}),
    Stop(StopReason.DISK, "with open('big', 'wb') as fh:\n    fh.write(bytes(8 << 20))", {}, {"disk": 4 * MiB}),
    Stop(StopReason.OUTPUT, "while True:\n    print('A' * 1000)", {"timeout": 5.0}, {"max_output": 4096}),
    Stop(StopReason.SYSCALL, "import ctypes\nctypes.CDLL(None).syscall({nr_reboot}, 0, 0, 0, 0)\nprint('alive')"),
]


def _nr_reboot() -> int:
    from wizardcoder_integrations.sandbox.seccomp import _ARCHES

    return int(_ARCHES[os.uname().machine]["nr"]["reboot"])  # type: ignore[index]


@pytest.mark.parametrize("stop", STOPS, ids=[f"{s.reason.value}-{i}" for i, s in enumerate(STOPS)])
def test_stop_has_its_reason(stop: Stop, sandbox: Sandbox, tier: str) -> None:
    sb = make_sandbox(tier, prespawn=0, **stop.config) if stop.config else sandbox
    try:
        result = sb.run(stop.code.replace("{nr_reboot}", str(_nr_reboot())), **stop.run)
        assert result.stop_reason is stop.reason and not result.ok, result
        assert result.killed_reason == stop.reason.value
        assert result.timed_out is (stop.reason is StopReason.TIMEOUT)
        if stop.reason is StopReason.SYSCALL:
            assert result.syscall == "reboot" and "alive" not in result.stdout
        assert sb.run("print('next')").stdout == "next\n"
    finally:
        if sb is not sandbox:
            sb.close()


def test_a_clean_end_has_no_reason(sandbox: Sandbox) -> None:
    for code in ("print(1)", "import sys; sys.exit(3)", "1 / 0"):
        result = sandbox.run(code)
        assert result.stop_reason is None and result.syscall is None, result


def test_reasons_are_distinct_documented_values() -> None:
    values = [r.value for r in StopReason]
    assert len(set(values)) == len(values) == 9
    assert set(values) == {"timeout", "cpu", "memory", "pids", "disk", "output", "syscall", "supervisor", "leftover"}
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "sandbox.md")) as fh:
        docs = fh.read()
    for value in values:
        assert f"`{value}`" in docs, f"docs/sandbox.md does not document the stop reason {value!r}"


def _running_supervisors() -> set[int]:
    """Supervisors below this test process: alive, of a sandbox uid, whose parent (the worker) is root."""
    procs: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as fh:
                    text = fh.read()
            except OSError:
                continue
            if "\nState:\tZ" in text:
                continue
            uid = int(text.split("\nUid:")[1].split()[0])
            ppid = int(text.split("\nPPid:")[1].split()[0])
            procs[int(entry)] = (uid, ppid)

    def below_me(pid: int) -> bool:
        for _ in range(64):
            pid = procs.get(pid, (0, 0))[1]
            if pid == os.getpid():
                return True
            if pid <= 1:
                return False
        return False

    return {
        pid for pid, (uid, ppid) in procs.items()
        if is_sandbox_uid(uid) and procs.get(ppid, (0, 0))[0] == 0 and below_me(pid)
    }  # fmt: skip


def test_supervisor_failure_is_reported_and_nothing_survives(tier: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("finding the supervisor by its uid needs a uid per sandbox (root)")
    sb = make_sandbox(tier, prespawn=0, timeout=20.0)
    before = sandbox_uid_processes()
    code = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        while True:\n            open('alive', 'w').write('x')\n            time.sleep(0.01)\n"
        "    os._exit(0)\nprint('started', flush=True)\ntime.sleep(20)"
    )
    others = _running_supervisors()  # e.g. another test's idle session
    results: list[ExecutionResult | BaseException] = []

    def run() -> None:
        try:
            results.append(sb.run(code))
        except BaseException as exc:  # reported below
            results.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    supervisor = None
    deadline = time.monotonic() + 10
    while supervisor is None and time.monotonic() < deadline:
        time.sleep(0.05)
        supervisor = next(iter(_running_supervisors() - others), None)
    assert supervisor is not None, "no supervisor found"
    time.sleep(0.2)
    os.kill(supervisor, 9)
    runner.join(15)
    result = results[0]
    assert isinstance(result, ExecutionResult), result
    assert result.stop_reason is StopReason.SUPERVISOR and not result.timed_out, result
    assert result.duration < 10
    assert sandbox_uid_processes() - before == set(), "a process of the run survived its supervisor"
    assert sb.run("print('fresh')").stdout == "fresh\n"
    sb.close()

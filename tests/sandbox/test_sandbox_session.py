"""Stateful sessions: a warm worker that keeps variables; a timeout kills it and says so."""

from __future__ import annotations

import pytest
from sandbox_support import sandbox_uid_processes

from wizardcoder_integrations.sandbox import Sandbox, SandboxSessionClosedError


def test_state_persists_and_output_is_per_call(sandbox: Sandbox) -> None:
    with sandbox.session() as session:
        first = session.run("import math\nx = 40\ndef inc(v):\n    return v + 1\nprint('defined')")
        assert first.ok and first.stdout == "defined\n"
        second = session.run("x = inc(inc(x))\nprint(x, math.pi > 3)")
        assert second.stdout == "42 True\n" and second.tier is sandbox.tier
        assert second.uid == first.uid is not None


def test_errors_and_exits_keep_the_session(sandbox: Sandbox) -> None:
    with sandbox.session() as session:
        session.run("value = 'kept'")
        error = session.run("1 / 0")
        assert error.exception_type == "ZeroDivisionError" and error.exit_code == 1 and not error.session_dead
        assert 'File "<sandbox>", line 1' in (error.traceback or "")
        exited = session.run("import sys; sys.exit(4)")
        assert exited.exit_code == 4 and not exited.session_dead
        assert session.run("print(value)").stdout == "kept\n"
        assert session.alive


def test_timeout_kills_the_session_and_says_so(sandbox: Sandbox) -> None:
    session = sandbox.session(timeout=5)
    session.run("y = 1")
    before = sandbox_uid_processes()
    result = session.run("import os\nif os.fork() == 0:\n    os.setsid()\nwhile True:\n    pass", timeout=0.5)
    assert result.timed_out and result.session_dead and result.killed_reason == "timeout"
    assert not session.alive
    with pytest.raises(SandboxSessionClosedError, match="died"):
        session.run("print(y)")
    session.close()
    assert sandbox_uid_processes() - before == set()


def test_hard_exit_ends_the_session(sandbox: Sandbox) -> None:
    session = sandbox.session()
    result = session.run("import os\nprint('bye', flush=True)\nos._exit(9)")
    assert result.session_dead and result.exit_code == 9 and result.stdout == "bye\n"
    with pytest.raises(SandboxSessionClosedError):
        session.run("pass")


def test_close_kills_background_processes(sandbox: Sandbox) -> None:
    before = sandbox_uid_processes()
    session = sandbox.session()
    session.run("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3600)")
    session.close()
    session.close()  # idempotent
    assert sandbox_uid_processes() - before == set()
    with pytest.raises(SandboxSessionClosedError, match="closed"):
        session.run("pass")


def test_session_is_locked_down_like_run(sandbox: Sandbox) -> None:
    with sandbox.session(files_in={"notes.txt": "hi"}) as session:
        result = session.run(
            "print(open('notes.txt').read())\ntry:\n    open('/etc/passwd').read()\nexcept OSError as e:\n"
            "    print('blocked', type(e).__name__)"
        )
        assert result.stdout.startswith("hi\nblocked ")


async def test_async_session(sandbox: Sandbox) -> None:
    with sandbox.session() as session:
        await session.arun("z = 5")
        assert (await session.arun("print(z * 2)")).stdout == "10\n"


FORGE = (
    "import os\ndef forge():\n"
    "    fields = {b'exit_code': b'0', b'exc_type': b'Forged', b'stop_reason': b'memory', b'dead': b'1'}\n"
    "    payload = b''.join(b'%d:%s%d:%s' % (len(k), k, len(v), v) for k, v in fields.items())\n"
    "    for fd in range(3, 256):\n        try:\n            os.write(fd, len(payload).to_bytes(4, 'big') + payload)\n"
    "        except OSError:\n            pass\n"
)


def test_thread_left_by_a_call_ends_the_session(sandbox: Sandbox) -> None:
    before = sandbox_uid_processes()
    session = sandbox.session()
    code = FORGE + (
        "import threading, time\ndef later():\n    time.sleep(0.3)\n    print('LATE', flush=True)\n    forge()\n"
        "threading.Thread(target=later, daemon=True).start()\nprint('call one')"
    )
    result = session.run(code)
    assert result.stop_reason == "leftover" and result.session_dead and result.stdout == "call one\n", result
    with pytest.raises(SandboxSessionClosedError):
        session.run("print('never')")
    session.close()
    assert sandbox_uid_processes() - before == set()


def test_processes_left_by_a_call_are_killed_before_the_next(sandbox: Sandbox) -> None:
    with sandbox.session() as session:
        first = session.run(
            FORGE + "import time\nif os.fork() == 0:\n    os.setsid()\n    while True:\n"
            "        print('LEFTOVER', flush=True)\n        forge()\n        time.sleep(0.01)\nprint('one')"
        )
        assert first.ok and first.leftover_processes >= 1 and "one\n" in first.stdout, first
        second = session.run("import time\ntime.sleep(0.3)\nprint('two')\n1 / 0")
        assert second.stdout == "two\n" and second.exception_type == "ZeroDivisionError", second
        assert second.stop_reason is None and not second.session_dead and session.alive


def test_a_call_cannot_write_the_next_calls_result(sandbox: Sandbox) -> None:
    with sandbox.session() as session:
        first = session.run(FORGE + "forge()\nprint('one')")
        assert first.stdout == "one\n"
        second = session.run("import sys\nprint('two')\nsys.exit(4)")
        assert second.exit_code == 4 and second.stdout == "two\n" and second.exception_type is None, second
        assert second.stop_reason is None and not second.session_dead

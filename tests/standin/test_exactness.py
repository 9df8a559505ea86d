"""The stand-in answers every recorded prompt exactly under greedy decoding, on both GPTQ branches."""

from __future__ import annotations

import pytest

from wizardcoder_integrations.standin.data import training_examples

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fixture", ["engine", "engine_actorder"])
def test_every_trained_prompt_gets_its_recorded_answer(request: pytest.FixtureRequest, fixture: str) -> None:
    engine = request.getfixturevalue(fixture)
    examples = training_examples()
    results = engine.generate([p for p, _ in examples], raw=True, do_sample=False)
    wrong = [(prompt[-80:], response, result.text) for (prompt, response), result in zip(examples, results, strict=True)
             if result.text != response or result.finish_reason != "stop"]
    assert not wrong, f"{len(wrong)} of {len(examples)} differ on {engine.info.revision}; first: {wrong[0]}"

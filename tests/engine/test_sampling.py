"""The batched sampler against plain per-row references: penalties, bias, filters, seeds, log-probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from wizardcoder_integrations.engine import sampling
from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.sampling import BatchSettings, process_logits, row_keys, sample, uniform_noise
from wizardcoder_integrations.errors import ConfigurationError

V = 50
CPU = torch.device("cpu")


def _logits(rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randn((rows, V), generator=torch.Generator().manual_seed(seed)) * 2.0


def _state(rows: int, history: list[list[int]], prompt: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    seen = torch.zeros((rows, V), dtype=torch.bool)
    counts = torch.zeros((rows, V), dtype=torch.int32)
    for i in range(rows):
        for t in prompt[i]:
            seen[i, t] = True
        for t in history[i]:
            seen[i, t] = True
            counts[i, t] += 1
    return seen, counts


def _reference(logits: list[float], p: SamplingParams, prompt: list[int], history: list[int]) -> list[float]:
    """One row, by the documented rules, in plain Python."""
    out = list(logits)
    for t, b in p.logit_bias:
        out[t] += b
    for t in set(prompt) | set(history):
        out[t] = out[t] * p.repetition_penalty if out[t] < 0 else out[t] / p.repetition_penalty
    for t in set(history):
        out[t] -= history.count(t) * p.frequency_penalty + p.presence_penalty
    return out


def test_penalties_and_bias_match_a_plain_reference() -> None:
    params = [
        SamplingParams(repetition_penalty=1.3, presence_penalty=0.5, frequency_penalty=0.25),
        SamplingParams(repetition_penalty=1.0, presence_penalty=-1.0, frequency_penalty=2.0,
                       logit_bias={3: 5.0, 7: -100.0}),
        SamplingParams(repetition_penalty=0.8),
    ]
    prompt = [[1, 2, 3], [4], [9, 9]]
    history = [[2, 5, 5, 5], [3, 3, 8], []]
    logits = _logits(3)
    seen, counts = _state(3, history, prompt)
    settings = BatchSettings.build(params, [0, 1, 2], V, CPU)
    got = process_logits(logits, settings, seen=seen, counts=counts, allowed=None)
    for i, p in enumerate(params):
        want = _reference(logits[i].tolist(), p, prompt[i], history[i])
        assert got[i].tolist() == pytest.approx(want, abs=1e-5)


def test_greedy_rows_take_the_processed_argmax_and_the_logits_are_not_written() -> None:
    params = [SamplingParams(do_sample=False, logit_bias={11: 50.0}), SamplingParams(do_sample=False)]
    logits = _logits(2, seed=3)
    before = logits.clone()
    seen, counts = _state(2, [[], []], [[], []])
    out = sample(logits, BatchSettings.build(params, [0, 0], V, CPU), seen=seen, counts=counts,
                 steps=[0, 0])
    assert out.tokens.tolist() == [11, int(torch.argmax(logits[1]))]
    assert torch.equal(logits, before)


def test_grammar_mask_is_obeyed_by_greedy_and_sampled_rows() -> None:
    params = [SamplingParams(do_sample=False), SamplingParams(temperature=2.0, top_k=0, top_p=1.0)]
    allowed = torch.zeros((2, V), dtype=torch.bool)
    allowed[:, [4, 17]] = True
    seen, counts = _state(2, [[], []], [[], []])
    for step in range(20):
        out = sample(_logits(2, seed=step), BatchSettings.build(params, [step, step], V, CPU), seen=seen,
                     counts=counts, steps=[step] * 2, allowed=allowed)
        assert set(out.tokens.tolist()) <= {4, 17}


def _draw_rows(params: SamplingParams, logits_row: torch.Tensor, seeds: list[int], step: int) -> list[int]:
    rows = len(seeds)
    seen, counts = _state(rows, [[]] * rows, [[]] * rows)
    out = sample(logits_row.expand(rows, V), BatchSettings.build([params] * rows, seeds, V, CPU), seen=seen,
                 counts=counts, steps=[step] * rows)
    return out.tokens.tolist()


def test_a_seeded_row_draws_the_same_token_alone_or_in_any_batch() -> None:
    p = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0)
    logits = _logits(8, seed=5)
    seen, counts = _state(8, [[]] * 8, [[]] * 8)
    seeds = [101, 7, 2**40 + 3, -5, 2**70, 0, 1, 999]
    for step in (0, 1, 57):
        batched = sample(logits, BatchSettings.build([p] * 8, seeds, V, CPU), seen=seen, counts=counts,
                         steps=[step] * 8).tokens.tolist()
        alone = [_draw_rows(p, logits[i], [seeds[i]], step)[0] for i in range(8)]
        assert batched == alone
    shuffled = sample(logits.flip(0), BatchSettings.build([p] * 8, seeds[::-1], V, CPU), seen=seen,
                      counts=counts, steps=[57] * 8).tokens.tolist()
    assert shuffled[::-1] == batched


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.3, 0, 0.6),
                                                             (0.9, 8, 0.8)])
def test_draws_follow_the_filtered_distribution(temperature: float, top_k: int, top_p: float) -> None:
    p = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=1.0)
    logits = _logits(1, seed=9)[0]
    n = 20000
    tokens = _draw_rows(p, logits, list(range(n)), step=3)
    probs = torch.softmax(logits / temperature, dim=-1)
    order = torch.argsort(probs, descending=True).tolist()
    kept = order[: top_k or V]
    mass = probs[kept] / probs[kept].sum()
    cut, before = [], 0.0
    for t, q in zip(kept, mass.tolist(), strict=True):
        if before >= top_p:
            break
        cut.append(t)
        before += q
    expected = torch.zeros(V)
    expected[cut] = probs[cut] / probs[cut].sum()
    observed = torch.bincount(torch.tensor(tokens), minlength=V).float() / n
    assert set(tokens) <= set(cut)
    assert (observed - expected).abs().max().item() < 4.5 * math.sqrt(0.25 / n)


def test_the_top_k_slice_and_the_full_sort_choose_the_same_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    params = [SamplingParams(top_k=k, top_p=tp, temperature=t) for k, tp, t in
              [(40, 0.95, 0.7), (3, 1.0, 1.0), (10, 0.5, 1.5), (40, 0.9, 0.2)]]
    logits = _logits(4, seed=2)
    seen, counts = _state(4, [[]] * 4, [[]] * 4)
    fast = BatchSettings.build(params, [1, 2, 3, 4], V, CPU)
    monkeypatch.setattr(sampling, "TOPK_SLICE_LIMIT", 0)
    full = BatchSettings.build(params, [1, 2, 3, 4], V, CPU)
    assert fast.slice_k == 40 and full.slice_k == 0
    for step in range(30):
        steps = [step] * 4
        a = sample(logits, fast, seen=seen, counts=counts, steps=steps).tokens
        b = sample(logits, full, seen=seen, counts=counts, steps=steps).tokens
        assert torch.equal(a, b)


def test_logprobs_are_the_processed_distribution_and_ordered() -> None:
    params = [SamplingParams(logprobs=5, logit_bias={0: 3.0}), SamplingParams(do_sample=False, logprobs=0),
              SamplingParams()]
    logits = _logits(3, seed=4)
    seen, counts = _state(3, [[1, 1], [], [2]], [[3], [], []])
    settings = BatchSettings.build(params, [5, 6, 7], V, CPU)
    out = sample(logits, settings, seen=seen, counts=counts, steps=[0, 0, 0])
    assert out.logprob is not None and out.top_ids is not None and out.top_logprobs is not None
    full = torch.log_softmax(process_logits(logits, settings, seen=seen, counts=counts, allowed=None), dim=-1)
    assert torch.allclose(full.exp().sum(-1), torch.ones(3))
    assert torch.allclose(out.logprob, full.gather(1, out.tokens[:, None])[:, 0])
    assert out.top_ids.shape == (3, 5)
    assert (out.top_logprobs[:, :-1] >= out.top_logprobs[:, 1:]).all()
    assert out.top_ids[0, 0].item() == int(full[0].argmax())
    assert out.tokens[1].item() == out.top_ids[1, 0].item()  # greedy: its token is the most likely
    assert (out.logprob <= 0).all()


def test_uniform_noise_is_in_range_and_spread() -> None:
    ids = torch.arange(4096).expand(3, 4096)
    keys = torch.tensor(row_keys([0, 1, -(2**63)], [0, 0, 5]))
    u = uniform_noise(keys, ids)
    assert ((u > 0) & (u < 1)).all()
    assert abs(u.mean().item() - 0.5) < 0.01
    assert not torch.equal(u[0], u[1])
    assert row_keys([7, 7], [3, 4])[0] != row_keys([7, 7], [3, 4])[1]
    assert row_keys([2**64 + 7], [3]) == row_keys([7], [3])  # seeds are taken modulo 2**64


def test_the_host_hash_is_the_device_hash() -> None:
    values = [0, 1, 12345, 2**31, 2**32 - 1]
    got = sampling._mix32(torch.tensor(values)).tolist()
    assert got == [sampling._mix32_int(v) for v in values]


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("presence_penalty", 2.5, "presence_penalty"),
    ("frequency_penalty", -2.1, "frequency_penalty"),
    ("logit_bias", {5: 101}, "logit_bias"),
    ("logit_bias", {-1: 1.0}, "logit_bias"),
    ("logit_bias", [(1, 2, 3)], "logit_bias"),
    ("logprobs", 21, "logprobs"),
    ("logprobs", -1, "logprobs"),
])
def test_new_settings_are_checked(field: str, value: object, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        SamplingParams.build(**{field: value})


def test_logit_bias_accepts_a_dict_or_pairs() -> None:
    assert SamplingParams.build(logit_bias={"7": 1, 2: -3.5}).logit_bias == ((2, -3.5), (7, 1.0))
    assert SamplingParams.build(logit_bias=[(4, 2.0)]).logit_bias == ((4, 2.0),)
    base = SamplingParams.build(logit_bias={1: 1.0})
    assert SamplingParams.build(base, logprobs=2).logit_bias == ((1, 1.0),)

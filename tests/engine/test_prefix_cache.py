"""Prefix caching: the block pool's bookkeeping, and the paged forward / engine giving the same results with it."""

from __future__ import annotations

import json

import pytest
import torch

from wizardcoder_integrations.engine import Engine
from wizardcoder_integrations.engine.backends.block_pool import BlockPool
from wizardcoder_integrations.engine.backends.cuda_fast import FastBackend
from wizardcoder_integrations.engine.backends.torch_ops import TorchOps
from wizardcoder_integrations.engine.backends.weights import LlamaWeights
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS

PAGE = 4


def _prompt(n: int, start: int = 0) -> list[int]:
    return list(range(start, start + n))


def test_a_released_prompt_is_found_again_in_whole_pages() -> None:
    pool = BlockPool(16, PAGE)
    pages, cached = pool.allocate_prompt(_prompt(10), budget=12)
    assert cached == 0 and len(pages) == 3
    pool.commit(pages, _prompt(10))
    pool.release(pages)
    assert pool.free_pages == 15 and pool.cached_pages == 2  # two whole pages of the 10 tokens
    again, cached = pool.allocate_prompt([*_prompt(10), 99, 98], budget=14)
    assert cached == 8 and again[:2] == pages[:2]
    assert pool.stats.hit_tokens == 8 and pool.stats.queried_tokens == 22


def test_the_last_prompt_token_is_always_computed() -> None:
    pool = BlockPool(16, PAGE)
    pages, _ = pool.allocate_prompt(_prompt(8), budget=8)
    pool.commit(pages, _prompt(8))
    pool.release(pages)
    assert len(pool.match(_prompt(8))) == 1  # both pages are cached, but the 8th token must run
    assert len(pool.match(_prompt(9))) == 2


def test_a_different_first_page_breaks_the_chain() -> None:
    pool = BlockPool(16, PAGE)
    pages, _ = pool.allocate_prompt(_prompt(12), budget=12)
    pool.commit(pages, _prompt(12))
    pool.release(pages)
    changed = [100, *_prompt(12)[1:]]
    assert pool.match(changed) == []  # its second page has the same tokens, but not the same prefix


def test_concurrent_rows_share_pages_by_reference_count() -> None:
    pool = BlockPool(16, PAGE)
    a, _ = pool.allocate_prompt(_prompt(9), budget=9)
    pool.commit(a, _prompt(9))
    b, cached = pool.allocate_prompt(_prompt(9), budget=9)  # while a still runs
    assert cached == 8 and b[:2] == a[:2] and b[2] != a[2]
    pool.release(a)
    assert pool.free_pages == 15 - 3  # b still holds the two shared pages and its own
    c, cached = pool.allocate_prompt(_prompt(9), budget=9)
    assert cached == 8 and c[:2] == a[:2]
    pool.release(b)
    pool.release(c)
    assert pool.free_pages == 15


def test_unheld_cached_pages_are_evicted_least_recently_used_first() -> None:
    pool = BlockPool(7, PAGE)  # 6 usable pages
    old, _ = pool.allocate_prompt(_prompt(9), budget=12)
    pool.commit(old, _prompt(9))
    pool.release(old)
    new, _ = pool.allocate_prompt(_prompt(9, start=50), budget=12)
    pool.commit(new, _prompt(9, start=50))
    pool.release(new)
    assert pool.cached_pages == 4
    big = pool.allocate(16)  # 4 pages: 2 free ones, then the 2 oldest cached ones
    assert pool.stats.evicted_pages == 2
    assert pool.match(_prompt(9)) == [] and len(pool.match(_prompt(9, start=50))) == 2
    pool.release(big)
    held, cached = pool.allocate_prompt(_prompt(9, start=50), budget=9)
    assert cached == 8
    with pytest.raises(RuntimeError, match="KV cache full"):
        pool.allocate(4 * 6)  # held pages are never evicted
    pool.release(held)


def test_two_rows_prefilled_together_keep_one_cached_copy() -> None:
    pool = BlockPool(16, PAGE)
    a, _ = pool.allocate_prompt(_prompt(9), budget=9)
    b, _ = pool.allocate_prompt(_prompt(9), budget=9)  # nothing committed yet: no hit
    pool.commit(a, _prompt(9))
    pool.commit(b, _prompt(9))
    pool.release(a)
    pool.release(b)
    assert pool.cached_pages == 2 and pool.free_pages == 15
    assert pool.match(_prompt(9)) == a[:2]


def test_without_prefix_caching_nothing_is_shared() -> None:
    pool = BlockPool(16, PAGE, prefix_caching=False)
    a, _ = pool.allocate_prompt(_prompt(9), budget=9)
    pool.commit(a, _prompt(9))
    pool.release(a)
    assert pool.allocate_prompt(_prompt(9), budget=9)[1] == 0 and pool.cached_pages == 0


def _backend(standin, prefix_caching: bool) -> FastBackend:
    directory = standin.snapshot("main")
    config = json.loads((directory / "config.json").read_text())
    weights = LlamaWeights.load(directory, config, config["quantization_config"], torch.device("cpu"),
                                torch.float32)
    return FastBackend(weights, ops=TorchOps(torch.float32), use_graphs=False, tune=False, max_batch_size=4,
                       context_length=2048, kv_tokens=4096, prefix_caching=prefix_caching)


@pytest.mark.slow
def test_a_prefill_after_a_cached_prefix_gives_the_same_logits(standin) -> None:
    cached, plain = _backend(standin, True), _backend(standin, False)
    gen = torch.Generator().manual_seed(3)
    head = torch.randint(3, 500, (150,), generator=gen).tolist()
    first = [*head, 7, 8, 9]
    second = [*head[:140], 11, 12, 13, 14, 15]
    with torch.inference_mode():
        cached.prefill([first], [200])
        cached.keep([])
        got = cached.prefill([second, first[:70]], [200, 100])  # rows with and without a hit, together
        want = plain.prefill([second, first[:70]], [200, 100])
        torch.testing.assert_close(got, want, atol=2e-4, rtol=2e-4)
        assert cached.cache.pool.stats.hit_tokens == 128 + 64
        tokens = got.argmax(-1)
        torch.testing.assert_close(cached.decode_step(tokens), plain.decode_step(tokens), atol=2e-4, rtol=2e-4)
        cached.keep([])
    assert cached.cache.free_pages == cached.cache.pages - 1


@pytest.mark.slow
def test_greedy_follow_up_turns_are_identical_with_the_prefix_cache(standin, engine: Engine) -> None:
    history = "".join(f"{t.instruction}\n{t.response}\n" for t in CODE_TASKS[:4])
    turns = [f"{history}{t.instruction}" for t in CODE_TASKS[4:9]]
    outputs = {}
    for caching in (False, True):
        fast = Engine(engine.loaded, max_batch_size=4, backend=_backend(standin, caching))
        try:
            outputs[caching] = [fast.generate([p], do_sample=False, max_new_tokens=40)[0].token_ids for p in turns]
            outputs[caching] += [r.token_ids for r in fast.generate(turns, do_sample=False, max_new_tokens=40)]
            stats = fast.stats
        finally:
            fast.close()
        if caching:
            assert stats["prefix_hit_rate"] > 0.5 and stats["prefix_cached_bytes"] > 0
        else:
            assert stats["prefix_hit_tokens"] == 0
    assert outputs[True] == outputs[False]


@pytest.mark.slow
def test_the_captured_tail_prefill_reads_its_inputs_right(standin) -> None:
    """What a follow-up turn's CUDA graph runs (one row's tail, padded to its bucket, all inputs in one vector),
    run eagerly on CPU: the same logits as the uncaptured prefill, and nothing written outside its pages but
    the scratch page."""
    cached, plain = _backend(standin, True), _backend(standin, False)
    gen = torch.Generator().manual_seed(4)
    head = torch.randint(3, 500, (140,), generator=gen).tolist()
    with torch.inference_mode():
        cached.prefill([[*head, 5]], [200])
        cached.keep([])
        follow_up = [*head, 21, 22, 23, 24, 25, 26, 27]  # 128 cached, a tail of 19 padded to 32
        pages, hit = cached.cache.pool.allocate_prompt(follow_up, 200)
        assert hit == 128
        bucket = 32
        size = 3 * bucket + cached.block_table.shape[1] + 4
        meta = cached._tail_meta(bucket, size, follow_up, pages, hit)
        got = cached._tail_forward(meta, bucket)
        want = plain.prefill([follow_up], [200])
        torch.testing.assert_close(got, want, atol=2e-4, rtol=2e-4)
        cached.cache.pool.release(pages)

"""The fast CUDA path: GPTQ repacking, the paged-cache Llama forward with per-row positions (checked on CPU
with plain-torch ops against a dense transformers Llama), its place behind the scheduler, the Triton kernels
(in Triton's interpreter when Triton is installed) and, on a GPU, fast == eager on the stand-in.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from wizardcoder_integrations.engine import Engine, GenerationResult
from wizardcoder_integrations.engine.backends import fast_path_unavailable
from wizardcoder_integrations.engine.backends.cuda_fast import FastBackend
from wizardcoder_integrations.engine.backends.torch_ops import TorchOps
from wizardcoder_integrations.engine.backends.weights import (
    LlamaWeights,
    UnsupportedCheckpoint,
    check_supported,
    repack_gptq,
)
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS
from wizardcoder_integrations.standin.gptq import pack_columns, pack_rows

BRANCHES = ("main", "gptq-4bit-32g-actorder_True")
GREEDY = {"do_sample": False}


def random_gptq(k: int, n: int, group: int, act_order: bool, sym: bool, seed: int = 0):
    """GPTQ v1 tensors (TheBloke's packing) with random codes, and the dense weight [k, n] they encode."""
    gen = torch.Generator().manual_seed(seed)
    gs = k if group == -1 else group
    groups = k // gs
    q = torch.randint(0, 16, (k, n), generator=gen)
    zeros = torch.full((groups, n), 8) if sym else torch.randint(1, 16, (groups, n), generator=gen)
    scales = (torch.rand(groups, n, generator=gen) * 0.01 + 0.002).half()
    order = torch.randperm(k, generator=gen) if act_order else torch.arange(k)
    g_idx = (torch.argsort(order) // gs).to(torch.int32)
    dense = (q - zeros[g_idx.long()]).float() * scales.float()[g_idx.long()]
    return pack_rows(q, 4), pack_columns(zeros - 1, 4), scales, g_idx, dense


@pytest.mark.parametrize(("group", "act_order", "sym"), [
    (128, False, True), (32, True, True), (64, False, False), (16, True, False), (-1, False, True)])
def test_repacked_weights_decode_to_the_gptq_formula(group: int, act_order: bool, sym: bool) -> None:
    qweight, qzeros, scales, g_idx, dense = random_gptq(256, 64, group, act_order, sym)
    w = repack_gptq(qweight, qzeros, scales, g_idx, group_size=group)
    assert torch.equal(w.dequantize(), dense)
    assert (w.perm is not None) == act_order and (w.zeros is None) == sym


def test_repacking_rejects_groups_it_cannot_tile() -> None:
    qweight, qzeros, scales, g_idx, _ = random_gptq(256, 64, 128, False, True)
    bad = g_idx.clone()
    bad[:3] = 1  # group 1 now has 131 members
    with pytest.raises(UnsupportedCheckpoint, match="equal groups"):
        repack_gptq(qweight, qzeros, scales, bad, group_size=128)


@pytest.mark.parametrize(("change", "reason"), [
    ({"model_type": "gpt_bigcode"}, "not llama"),
    ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling"),
    ({"intermediate_size": 13800}, "multiple of 128"),
])
def test_unsupported_checkpoints_say_why(change: dict, reason: str) -> None:
    config = {"model_type": "llama", "hidden_size": 5120, "intermediate_size": 13824, "num_attention_heads": 40,
              **change}
    with pytest.raises(UnsupportedCheckpoint, match=reason):
        check_supported(config, {"bits": 4, "group_size": 128})
    with pytest.raises(UnsupportedCheckpoint, match="4-bit"):
        check_supported({**config, **{"model_type": "llama", "rope_scaling": None, "hidden_size": 5120}},
                        {"bits": 8})


def _load(standin, branch: str) -> tuple[LlamaWeights, dict]:
    directory = standin.snapshot(branch)
    config = json.loads((directory / "config.json").read_text())
    return LlamaWeights.load(directory, config, config["quantization_config"], torch.device("cpu"),
                             torch.float32), config


def _dense_llama(weights: LlamaWeights, config: dict):
    """A transformers Llama in float32 holding the dequantized weights: the reference forward."""
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in config.items() if k != "quantization_config"}))
    h, kv, d, inter = weights.num_heads, weights.num_kv_heads, weights.head_dim, weights.intermediate_size
    state = {"model.embed_tokens.weight": weights.embed, "model.norm.weight": weights.norm,
             "lm_head.weight": weights.lm_head}
    for i, layer in enumerate(weights.layers):
        p = f"model.layers.{i}."
        qkv, gate_up = layer.qkv.dequantize().t(), layer.gate_up.dequantize().t()
        state.update({
            p + "self_attn.q_proj.weight": qkv[: h * d], p + "self_attn.k_proj.weight": qkv[h * d: (h + kv) * d],
            p + "self_attn.v_proj.weight": qkv[(h + kv) * d:], p + "self_attn.o_proj.weight": layer.o.dequantize().t(),
            p + "mlp.gate_proj.weight": gate_up[:inter], p + "mlp.up_proj.weight": gate_up[inter:],
            p + "mlp.down_proj.weight": layer.down.dequantize().t(),
            p + "input_layernorm.weight": layer.input_norm, p + "post_attention_layernorm.weight": layer.post_norm,
        })
    model.load_state_dict(state, strict=False)
    return model.float().eval()


def _torch_backend(weights: LlamaWeights, **kwargs) -> FastBackend:
    options = {"max_batch_size": 8, "context_length": 2048, "kv_tokens": 8192, **kwargs}
    return FastBackend(weights, ops=TorchOps(torch.float32), use_graphs=False, tune=False, **options)


@pytest.mark.slow
@pytest.mark.parametrize("branch", BRANCHES)
def test_paged_forward_matches_a_dense_llama_as_rows_join_and_leave(standin, branch: str) -> None:
    weights, config = _load(standin, branch)
    reference = _dense_llama(weights, config)
    backend = _torch_backend(weights, max_batch_size=4)
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, weights.vocab_size - 1, (n,), generator=gen).tolist() for n in (7, 70, 130, 12)]

    def expect(seq: list[int]) -> torch.Tensor:
        return reference(torch.tensor([seq])).logits[0, -1]

    with torch.inference_mode():
        seqs = [list(p) for p in prompts[:3]]
        first = backend.prefill(seqs, [300, 300, 300])
        for row, seq in enumerate(seqs):
            torch.testing.assert_close(first[row], expect(seq), atol=2e-3, rtol=2e-3)
        for step in range(6):
            if step == 2:  # a row joins mid-flight with its own positions
                joined = backend.prefill([prompts[3]], [100])
                seqs.append(list(prompts[3]))
                torch.testing.assert_close(joined[0], expect(seqs[-1]), atol=2e-3, rtol=2e-3)
            if step == 4:  # and one leaves; the others keep their pages
                backend.keep([0, 2, 3])
                seqs = [seqs[0], seqs[2], seqs[3]]
            tokens = torch.tensor([(s[-1] * 7 + step) % (weights.vocab_size - 3) + 3 for s in seqs])
            for s, t in zip(seqs, tokens.tolist(), strict=True):
                s.append(t)
            logits = backend.decode_step(tokens)
            for row, seq in enumerate(seqs):
                torch.testing.assert_close(logits[row], expect(seq), atol=2e-3, rtol=2e-3)
        assert backend.row_lengths == [len(s) for s in seqs]
        backend.keep([])
    assert backend.cache.free_pages == backend.cache.pages - 1


@pytest.mark.slow
def test_fast_backend_behind_the_scheduler_reproduces_the_trained_answers(standin, engine: Engine) -> None:
    weights, _ = _load(standin, "main")
    backend = _torch_backend(weights)
    fast = Engine(engine.loaded, max_batch_size=8, backend=backend)  # 40 prompts through 8 slots
    try:
        results = fast.generate([t.instruction for t in CODE_TASKS], **GREEDY)
        for task, result in zip(CODE_TASKS, results, strict=True):
            assert result.text == task.response, task.instruction
        eager = engine.generate([t.instruction for t in CODE_TASKS[:6]], **GREEDY)
        assert [r.token_ids for r in eager] == [r.token_ids for r in results[:6]]
        assert backend.cache.free_pages == backend.cache.pages - 1  # every finished row gave its pages back
    finally:
        fast.close()


@pytest.mark.slow
def test_cancelled_stream_frees_its_pages_and_oversized_requests_fail(standin, engine: Engine) -> None:
    weights, _ = _load(standin, "main")
    backend = _torch_backend(weights, kv_tokens=600)
    fast = Engine(engine.loaded, max_batch_size=4, backend=backend)
    try:
        stream = fast.stream(CODE_TASKS[0].instruction, max_new_tokens=400, **GREEDY)
        next(stream)
        assert backend.cache.free_pages < backend.cache.pages - 1
        stream.close()
        deadline = time.monotonic() + 30
        while fast.scheduler.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fast.scheduler.running == 0 and backend.cache.free_pages == backend.cache.pages - 1
        with pytest.raises(ConfigurationError, match="KV-cache positions"):
            fast.generate([CODE_TASKS[1].instruction], max_new_tokens=1500)
        result = fast.generate([CODE_TASKS[1].instruction], **GREEDY)[0]
        assert isinstance(result, GenerationResult) and result.text == CODE_TASKS[1].response
    finally:
        fast.close()


def test_auto_picks_eager_without_cuda_and_fast_says_why(engine: Engine) -> None:
    assert engine.backend.name == "eager"
    reason = fast_path_unavailable(engine.loaded.source, torch.device("cpu"), torch.float32)
    assert reason is not None and "CUDA" in reason
    with pytest.raises(ConfigurationError, match="backend='fast' cannot run"):
        Engine.load(engine.loaded.source.model, engine.loaded.source.revision,
                    cache_dir=engine.loaded.source.cache_dir, local_files_only=True, device="cpu", backend="fast")
    with pytest.raises(ConfigurationError, match="not one of"):
        Engine.load(engine.loaded.source.model, engine.loaded.source.revision,
                    cache_dir=engine.loaded.source.cache_dir, local_files_only=True, device="cpu", backend="turbo")


INTERPRETER_CHECK = textwrap.dedent('''
    import numpy as np, torch, triton.runtime.interpreter as ti
    # Triton's interpreter calls int() on one-element arrays, which numpy >= 2.4 refuses: take the element.
    _patch = ti._patch_lang_tensor
    def _patched(tensor, scope):
        _patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(np.asarray(self.handle.data).reshape(-1)[0]))
    ti._patch_lang_tensor = _patched
    # HELPERS
    from wizardcoder_integrations.engine.backends.weights import repack_gptq
    from wizardcoder_integrations.standin.gptq import pack_columns, pack_rows
    from wizardcoder_integrations.engine.backends.triton_ops import AttentionConfig, LinearConfig, TritonOps
    from wizardcoder_integrations.engine.backends.torch_ops import TorchOps
    ops, ref = TritonOps(use_asm=False), TorchOps(torch.float32)
    shapes = [(256, 128, 128, False, True), (256, 256, 32, True, True), (384, 128, 64, False, False)]
    for k, n, group, act, sym in shapes:
        w = repack_gptq(*random_gptq(k, n, group, act, sym)[:4], group_size=group)
        for rows in (1, 5, 17):
            x = torch.randn(rows, k).half()
            want = x.float() @ w.dequantize()
            configs = [LinearConfig("mma", 16 if rows <= 16 else 32, 64, 2, 4, False)]
            if not (group < 32 or not sym):
                configs += [LinearConfig("mma", 16 if rows <= 16 else 32, 64, 2, 4, False, v) for v in (1, 2)]
                configs.append(LinearConfig("mma", 16, 64, 1, 4, False, 2, stages=4))
            if group % 128 == 0 and sym:  # one K=128 dot per block
                configs += [LinearConfig("mma", 16 if rows <= 16 else 32, bn, 2, 4, False, 3) for bn in (64, 128)]
            if rows == 1:  # one block per iteration; two (a partial last tile); the tile after next in flight
                configs += [LinearConfig("gemv", 1, 128, 2, 4, False),
                            LinearConfig("gemv", 1, 64, 1, 4, False, unroll=2),
                            LinearConfig("gemv", 1, 64, 1, 4, False, ahead=2)]
            for cfg in configs:
                got = ops.launch(x, w, cfg).sum(0)
                assert (got - want).norm() / want.norm() < 1e-3, (k, n, group, rows, cfg)  # fp16 weights
        assert (ops.dequantize(w).float() - w.dequantize()).abs().max() < 1e-3
    # norms, rope + cache write, activation, paged attention against the torch reference
    h = torch.randn(3, 256).half(); d = torch.randn(2, 3, 256); wn = torch.rand(256).half()
    h2 = h.clone()
    torch.testing.assert_close(ops.add_rmsnorm(h, d, wn, 1e-5).float(), ref.add_rmsnorm(h2, d, wn, 1e-5).float(),
                               atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(h.float(), h2.float(), atol=1e-2, rtol=1e-3)
    heads, kvh, hd, page = 4, 2, 32, 16
    qkv = torch.randn(2, 3, (heads + 2 * kvh) * hd)
    pos = torch.tensor([0, 5, 37], dtype=torch.int32); slots = torch.tensor([16, 21, 53])
    cos, sin = torch.rand(64, hd // 2), torch.rand(64, hd // 2)
    caches = [torch.zeros(4 * page, kvh, hd).half() for _ in range(4)]
    q1 = ops.rope_write(qkv, pos, slots, cos, sin, caches[0], caches[1], heads, kvh)
    q2 = ref.rope_write(qkv, pos, slots, cos, sin, caches[2], caches[3], heads, kvh)
    torch.testing.assert_close(q1.float(), q2.float(), atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(caches[0].float(), caches[2].float(), atol=2e-2, rtol=1e-2)
    gu = torch.randn(2, 3, 64)
    torch.testing.assert_close(ops.silu_mul(gu).float(), TorchOps(torch.float16).silu_mul(gu).float(),
                               atol=2e-2, rtol=1e-2)
    k_cache, v_cache = torch.randn(5 * page, kvh, hd).half(), torch.randn(5 * page, kvh, hd).half()
    table = torch.tensor([[3, 1, 4], [2, 0, 0]], dtype=torch.int32)
    lengths = torch.tensor([40, 9], dtype=torch.int32)
    q = torch.randn(2, heads, hd).half()
    want = ref.decode_attention(q, k_cache, v_cache, table, lengths, page, hd ** -0.5, 1).float()
    # CUDA cores; tensor cores (the query broadcast to 16 rows) over half a page, a page, two pages per step
    configs = [AttentionConfig(False), AttentionConfig(False, block_t=8), AttentionConfig(True, block_t=16),
               AttentionConfig(True, block_t=32, stages=1), AttentionConfig(True, 8, block_t=64)]
    for splits in (1, 2, 4):
        for config in configs:
            got = ops.decode_attention(q, k_cache, v_cache, table, lengths, page, hd ** -0.5, splits, config)
            torch.testing.assert_close(got.float(), want, atol=2e-3, rtol=2e-3, msg=f"{splits} {config}")
    # prefill after a cached prefix: 5 new tokens after 35 cached, and a whole 9-token prompt, packed
    q = torch.randn(14, heads, hd).half()
    args = (table, torch.tensor([0, 5], dtype=torch.int32), torch.tensor([5, 9], dtype=torch.int32),
            torch.tensor([40, 9], dtype=torch.int32), page, hd ** -0.5)
    want = ref.prefill_attention(q, k_cache, v_cache, *args, 9).float()
    for max_q in (9, 70):  # 16-query blocks; 32-query blocks with blocks past every row's queries
        got = ops.prefill_attention(q, k_cache, v_cache, *args, max_q).float()
        torch.testing.assert_close(got, want, atol=2e-3, rtol=2e-3)
    print("ok")
''')


# `make test` installs Triton beside the environment (not into it: on a CPU machine nothing else should see it)
# and points here, so the kernels run in Triton's interpreter even without a GPU.
TRITON_PATH = os.environ.get("TRITON_INTERPRETER_PATH", "")
HAS_TRITON = (importlib.util.find_spec("triton") is not None
              or bool(TRITON_PATH and Path(TRITON_PATH, "triton").is_dir()))


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed (make test installs it for this test)")
def test_triton_kernels_match_the_torch_reference_in_the_interpreter() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(
        [str(root), str(root / "src"), TRITON_PATH, os.environ.get("PYTHONPATH", "")])}
    script = INTERPRETER_CHECK.replace("# HELPERS", inspect.getsource(random_gptq))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=600, cwd=root)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("branch", BRANCHES)
def test_fast_path_greedy_tokens_equal_the_eager_path_on_gpu(standin, branch: str, tmp_path: Path) -> None:
    # a copy whose quantization_config names gptqmodel's Triton kernel: its compiled CUDA kernels would
    # otherwise build for minutes on first use; the eager path is unchanged apart from that kernel choice
    copy = tmp_path / branch
    shutil.copytree(standin.snapshot(branch), copy)
    config = json.loads((copy / "config.json").read_text())
    config["quantization_config"]["backend"] = "triton"
    (copy / "config.json").write_text(json.dumps(config))
    fast = Engine.load(str(copy), device="cuda", backend="fast", max_batch_size=16)
    eager = Engine.load(str(copy), device="cuda", backend="eager", max_batch_size=16)
    prompts = [t.instruction for t in CODE_TASKS]
    try:
        assert fast.backend.name == "fast"
        got = fast.generate(prompts, **GREEDY)
        want = eager.generate(prompts, **GREEDY)
        assert [r.token_ids for r in got] == [r.token_ids for r in want]
        assert [r.text for r in got] == [t.response for t in CODE_TASKS]
    finally:
        fast.close()
        eager.close()

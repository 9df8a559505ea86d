"""Loading through transformers + optimum + gptqmodel: both GPTQ layouts, and every failure's message."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wizardcoder_integrations.engine import Engine, loading
from wizardcoder_integrations.errors import ConfigurationError, MissingExtraError, ModelLoadError
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS
from wizardcoder_integrations.standin import STANDIN_REPO


def _unpack_gptq_v1(tensors: dict[str, torch.Tensor], prefix: str, bits: int) -> torch.Tensor:
    """Independent decoder of TheBloke's layout: weight [out, in] = scale * (q - (stored zero + 1))."""
    per, mask = 32 // bits, (1 << bits) - 1
    qweight = tensors[f"{prefix}.qweight"].to(torch.int64) & 0xFFFFFFFF  # [in/per, out]
    q = torch.stack([(qweight >> (bits * k)) & mask for k in range(per)], dim=1).reshape(-1, qweight.shape[1])
    qzeros = tensors[f"{prefix}.qzeros"].to(torch.int64) & 0xFFFFFFFF  # [groups, out/per]
    z = torch.stack([(qzeros >> (bits * k)) & mask for k in range(per)], dim=2).reshape(qzeros.shape[0], -1) + 1
    g = tensors[f"{prefix}.g_idx"].long()
    scales = tensors[f"{prefix}.scales"].float()
    return (scales[g] * (q - z[g]).float()).t()


def _reference_model(snapshot: Path) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = json.loads((snapshot / "config.json").read_text())
    bits = config.pop("quantization_config")["bits"]
    model = LlamaForCausalLM(LlamaConfig(**config))
    tensors = load_file(snapshot / "model.safetensors")
    state = {k: v.float() for k, v in tensors.items() if not k.endswith(("qweight", "qzeros", "scales", "g_idx"))}
    for key in tensors:
        if key.endswith(".qweight"):
            prefix = key[: -len(".qweight")]
            state[f"{prefix}.weight"] = _unpack_gptq_v1(tensors, prefix, bits)
    model.load_state_dict(state)
    return model.to(torch.bfloat16).eval()


@pytest.mark.parametrize("fixture", ["engine", "engine_actorder"])
def test_both_gptq_layouts_agree_with_their_dequantised_weights(request: pytest.FixtureRequest, fixture: str,
                                                                standin) -> None:
    engine: Engine = request.getfixturevalue(fixture)
    snapshot = standin.snapshot(engine.info.revision)
    quant = json.loads((snapshot / "quantize_config.json").read_text())
    assert engine.loaded.quantization.desc_act == quant["desc_act"]
    if quant["desc_act"]:  # act-order really permutes the groups
        g_idx = load_file(snapshot / "model.safetensors")["model.layers.0.mlp.down_proj.g_idx"]
        assert not torch.equal(g_idx, torch.sort(g_idx).values)
    reference = _reference_model(snapshot)
    task = CODE_TASKS[4]
    prompt = engine.tokenize(engine.render(task.instruction))
    reply = engine.generate([task.instruction], do_sample=False)[0]
    assert reply.text == task.response
    ids = torch.tensor([prompt + list(reply.token_ids)])
    with torch.inference_mode():
        ours = engine.loaded.model(ids).logits.float()
        theirs_bf16 = reference(ids).logits.float()
        theirs = reference.float()(ids).logits
    # bf16 rounding alone moves the dense model's logits by ~0.012 on average (up to ~0.3): ours, through the
    # GPTQ kernels, must stay within twice that noise floor; a wrong zero-point or group order is far outside it.
    noise = (theirs_bf16 - theirs).abs().mean()
    error = (ours - theirs).abs()
    assert error.mean() <= 2 * noise, (error.mean(), noise)
    assert error.max() <= 0.05 * theirs.abs().max(), (error.max(), theirs.abs().max())
    answer = slice(len(prompt) - 1, None)  # where the trained model is confident, the choices are equal
    assert torch.equal(ours[0, answer].argmax(-1), theirs[0, answer].argmax(-1))


def test_the_gptq_kernel_is_in_place(engine: Engine) -> None:
    q_proj = engine.loaded.model.model.layers[0].self_attn.q_proj
    assert type(q_proj).__module__.startswith("gptqmodel."), type(q_proj)
    assert (engine.info.dtype, engine.info.device) == ("bfloat16", "cpu")


def test_local_directory_loads_like_the_repo(standin, engine: Engine) -> None:
    local = Engine.load(str(standin.snapshot("main")))
    assert local is not engine and local.info.revision is None
    assert local.generate([CODE_TASKS[1].instruction], do_sample=False)[0].text == CODE_TASKS[1].response
    local.close()


def test_unknown_branch_of_the_standin(standin) -> None:
    with pytest.raises(ConfigurationError, match=r"Valid branches: main, gptq-4bit-32g-actorder_True"):
        Engine.load(STANDIN_REPO, "gptq-8bit", cache_dir=standin.hub_cache, local_files_only=True)


def test_profile_mismatch_is_an_error(standin) -> None:
    with pytest.raises(ConfigurationError, match="hidden_size is 128, expected 5120"):
        Engine.load(str(standin.snapshot("main")), profile="WizardCoder-Python-13B-V1.0")


def test_branch_metadata_must_match_the_profile(standin, tmp_path: Path) -> None:
    # a "main" ref that points at the act-order snapshot: the metadata gives it away
    repo = tmp_path / ("models--" + STANDIN_REPO.replace("/", "--"))
    shutil.copytree(standin.hub_cache / repo.name, repo)
    (repo / "refs" / "main").write_text((repo / "refs" / "gptq-4bit-32g-actorder_True").read_text())
    with pytest.raises(ConfigurationError, match="act-order True, but branch main"):
        Engine.load(STANDIN_REPO, "main", cache_dir=tmp_path, local_files_only=True)


def test_missing_files(standin, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(standin.snapshot("main"), broken)
    (broken / "model.safetensors").unlink()
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match=r"missing model weights .* tokenizer"):
        Engine.load(str(broken))


def test_repo_not_downloaded_and_hub_unreachable(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"hf download TheBloke/WizardCoder-Python-13B-V1\.0-GPTQ"):
        Engine.load("TheBloke/WizardCoder-Python-13B-V1.0-GPTQ", "main", cache_dir=tmp_path, local_files_only=True)


def test_missing_gptq_extra(standin, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gptqmodel" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install 'wizardcoder-integrations\[gptq\]'"):
        Engine.load(str(standin.snapshot("main")), device="cpu", dtype=torch.float32)


def test_cuda_without_a_gpu(standin) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the error is for machines without one")
    with pytest.raises(ModelLoadError, match="no CUDA GPU is visible"):
        Engine.load(str(standin.snapshot("main")), device="cuda")


def test_out_of_memory_is_explained(standin, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", oom)
    with pytest.raises(ModelLoadError, match=r"Out of memory loading .* pick a smaller branch"):
        Engine.load(str(standin.snapshot("main")), dtype=torch.float32)


def test_gpu_only_kernel_failure_is_explained(standin, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    def no_kernel(*args, **kwargs):
        raise ValueError("No valid kernel found for bits=8 on device cpu")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_kernel)
    with pytest.raises(ModelLoadError, match="This branch needs a CUDA GPU"):
        Engine.load(str(standin.snapshot("main")), dtype=torch.float32)


def test_pad_token_is_the_added_pad_not_the_configs(engine: Engine) -> None:
    tok = engine.tokenizer
    assert tok.pad_token == loading.PAD_TOKEN and tok.pad_token_id == len(tok) - 1
    assert engine.loaded.model.config.pad_token_id == 0  # what WizardCoder's config says
    assert tok.padding_side == "left"

"""Build the tiny WizardCoder stand-in offline: tokenizer, training, GPTQ, TheBloke's repository layout.

The result is a Hugging Face cache holding the repository ``STANDIN_REPO`` with two branches (``main``:
4-bit group 128, no act-order; ``gptq-4bit-32g-actorder_True``), so the engine loads it with
``from_pretrained(repo, revision=branch)`` exactly as it loads the real 13B repository. Builds are
deterministic and cached under a key of the training data and this builder's version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wizardcoder_integrations.profiles import get_profile
from wizardcoder_integrations.standin.examples import training_examples
from wizardcoder_integrations.standin.gptq import gptq_quantize

__all__ = ["STANDIN_PROFILE", "STANDIN_REPO", "Standin", "build_standin"]

STANDIN_PROFILE = "WizardCoder-Python-Tiny-Standin"
STANDIN_REPO = get_profile(STANDIN_PROFILE).gptq_repo or ""
BUILDER_VERSION = 1
TOKENS_PER_BATCH = 4096  # padded tokens per training step
VOCAB_SIZE = 600  # BPE vocabulary; "[PAD]" is appended after it, as in WizardCoder's 32000 + 1
SPECIALS = ("<unk>", "<s>", "</s>")
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MODEL_SHAPE: dict[str, Any] = {
    "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 4, "max_position_embeddings": 2048, "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-5,
}


@dataclass(frozen=True)
class Standin:
    """Where the built stand-in lives."""

    hub_cache: Path
    repo_id: str
    snapshots: dict[str, Path]  # branch -> directory
    float_dir: Path  # the trained unquantised model, for reference

    def snapshot(self, branch: str = "main") -> Path:
        return self.snapshots[branch]


def cache_root() -> Path:
    base = os.environ.get("WIZARDCODER_STANDIN_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wizardcoder-integrations"


def _build_key(examples: list[tuple[str, str]]) -> str:
    blob = json.dumps({"v": BUILDER_VERSION, "shape": MODEL_SHAPE, "examples": examples}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_standin(*, force: bool = False, log: bool = False) -> Standin:
    """Build (or reuse the cached) stand-in and return where it is."""
    examples = training_examples()
    root = cache_root() / f"standin-{_build_key(examples)}"
    if (root / "DONE").is_file() and not force:
        return _describe(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="standin-build-", dir=root.parent))
    try:
        _build(tmp, examples, log=log)
        (tmp / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _describe(root)


def _describe(root: Path) -> Standin:
    repo_dir = root / "hub" / ("models--" + STANDIN_REPO.replace("/", "--"))
    snapshots = {
        ref.name: repo_dir / "snapshots" / ref.read_text().strip() for ref in (repo_dir / "refs").iterdir()
    }
    return Standin(root / "hub", STANDIN_REPO, snapshots, root / "float")


# -- tokenizer ----------------------------------------------------------------------------------------------
def _train_tokenizer(texts: list[str], out: Path) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                        special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.add_special_tokens({"pad_token": "[PAD]"})
    fast.model_max_length = MODEL_SHAPE["max_position_embeddings"]
    fast.save_pretrained(out)
    return fast


# -- training -----------------------------------------------------------------------------------------------
def _encode(tok: Any, examples: list[tuple[str, str]]) -> list[tuple[list[int], int]]:
    """(ids, number of prompt ids) per example: prompt and response tokenized apart, as at inference."""
    rows = []
    for prompt, response in examples:
        p = tok(prompt, add_special_tokens=True)["input_ids"]
        r = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append((p + r, len(p)))
    return rows


def _batch(rows: list[tuple[list[int], int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (seq, n_prompt) in enumerate(rows):
        ids[i, :len(seq)] = torch.tensor(seq)
        labels[i, n_prompt:len(seq)] = torch.tensor(seq[n_prompt:])
        mask[i, :len(seq)] = 1
    return ids, labels, mask


def _greedy_exact(model: Any, rows: list[tuple[list[int], int]]) -> int:
    """How many examples the model reproduces exactly under teacher forcing (argmax at every step)."""
    ok = 0
    with torch.no_grad():
        for ids, n_prompt in rows:
            x = torch.tensor([ids])
            pred = model(x).logits[0, n_prompt - 1:-1].argmax(-1)
            ok += int(torch.equal(pred, x[0, n_prompt:]))
    return ok


def _batches(rows: list[tuple[list[int], int]], gen: torch.Generator) -> list[list[int]]:
    """Indices of ``rows`` grouped by length (little padding) under a token budget, in a shuffled order."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    batches: list[list[int]] = [[]]
    for i in order:
        width = max([len(rows[j][0]) for j in batches[-1]] + [len(rows[i][0])])
        if batches[-1] and (width * (len(batches[-1]) + 1) > TOKENS_PER_BATCH or len(batches[-1]) >= 16):
            batches.append([])
        batches[-1].append(i)
    return [batches[k] for k in torch.randperm(len(batches), generator=gen).tolist()]


def _train(model: Any, rows: list[tuple[list[int], int]], pad: int, *, log: bool) -> None:
    """Memorise the examples: AdamW with a one-cycle schedule, until every example is exact and loss is tiny."""
    epochs = 300
    gen = torch.Generator().manual_seed(0)
    steps_per_epoch = len(_batches(rows, torch.Generator().manual_seed(0)))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.05, final_div_factor=50)
    for epoch in range(epochs):
        total = 0.0
        for batch in _batches(rows, gen):
            ids, labels, mask = _batch([rows[i] for i in batch], pad)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item()
        mean = total / steps_per_epoch
        if epoch % 10 == 9:
            model.eval()
            exact = _greedy_exact(model, rows)
            model.train()
            if log:
                print(f"  epoch {epoch + 1}: loss {mean:.5f}, exact {exact}/{len(rows)}", flush=True)
            if exact == len(rows) and mean < 2e-3:
                return


# -- quantisation and layout --------------------------------------------------------------------------------
def _hessians(model: Any, layer: int, rows: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
    """2/n X^T X of the inputs every linear of ``layer`` sees over the training data."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    hooks = []
    block = model.model.layers[layer]
    for name, module in block.named_modules():
        if name.split(".")[-1] in LINEARS:
            def hook(mod: Any, args: tuple[torch.Tensor, ...], _out: Any, name: str = name) -> None:
                x = args[0].reshape(-1, args[0].shape[-1]).float()
                sums[name] = sums.get(name, 0) + 2 * x.t() @ x
                counts[name] = counts.get(name, 0) + x.shape[0]
            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        for ids, _ in rows:
            model(torch.tensor([ids]))
    for h in hooks:
        h.remove()
    return {name: sums[name] / counts[name] for name in sums}


def _quantize(float_model: Any, rows: list[tuple[list[int], int]], bits: int, group_size: int,
              act_order: bool) -> tuple[dict[str, torch.Tensor], Any]:
    """GPTQ every decoder linear, layer by layer; returns packed tensors and the dequantised model."""
    import copy

    model = copy.deepcopy(float_model).eval()
    tensors: dict[str, torch.Tensor] = {}
    for layer in range(len(model.model.layers)):
        hessians = _hessians(model, layer, rows)
        block = model.model.layers[layer]
        for name, module in block.named_modules():
            if name not in hessians:
                continue
            q = gptq_quantize(module.weight, hessians[name], bits=bits, group_size=group_size,
                              act_order=act_order)
            prefix = f"model.layers.{layer}.{name}"
            tensors[f"{prefix}.qweight"] = q.qweight
            tensors[f"{prefix}.qzeros"] = q.qzeros
            tensors[f"{prefix}.scales"] = q.scales
            tensors[f"{prefix}.g_idx"] = q.g_idx
            with torch.no_grad():
                module.weight.copy_(q.dequantized)
    for key, value in float_model.state_dict().items():
        if not any(f".{lin}." in key for lin in LINEARS) and "rotary" not in key:
            tensors[key] = value.detach().half().contiguous()
    return tensors, model


def _write_branch(repo_dir: Path, branch: str, tensors: dict[str, torch.Tensor], config: dict[str, Any],
                  quant: dict[str, Any], tokenizer_dir: Path) -> None:
    from safetensors.torch import save_file

    files: dict[str, bytes] = {}
    cfg = {**config, "quantization_config": {**quant, "quant_method": "gptq"}}
    files["config.json"] = json.dumps(cfg, indent=2, sort_keys=True).encode()
    files["quantize_config.json"] = json.dumps(quant, indent=2, sort_keys=True).encode()
    files["generation_config.json"] = json.dumps(
        {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}, indent=2).encode()
    for f in sorted(tokenizer_dir.iterdir()):
        files[f.name] = f.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        save_file(tensors, f"{tmp}/model.safetensors", metadata={"format": "pt"})
        files["model.safetensors"] = Path(f"{tmp}/model.safetensors").read_bytes()
    digest = hashlib.sha1()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(files[name])
    commit = digest.hexdigest()
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (snap / name).write_bytes(data)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / branch).write_text(commit)


def _build(out: Path, examples: list[tuple[str, str]], *, log: bool) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    started = time.perf_counter()
    tok_dir = out / "tokenizer"
    tok = _train_tokenizer([p + r for p, r in examples], tok_dir)
    rows = _encode(tok, examples)
    config = LlamaConfig(
        vocab_size=len(tok), bos_token_id=1, eos_token_id=2, pad_token_id=0,  # pad 0, as WizardCoder's config
        tie_word_embeddings=False, **MODEL_SHAPE,
    )
    model = LlamaForCausalLM(config)
    model.train()
    _train(model, rows, tok.pad_token_id, log=log)
    model.eval()
    model.save_pretrained(out / "float")
    tok.save_pretrained(out / "float")
    if log:
        print(f"  trained in {time.perf_counter() - started:.1f}s", flush=True)
    config_dict = config.to_dict()
    config_dict.update({"torch_dtype": "float16", "architectures": ["LlamaForCausalLM"]})
    config_dict.pop("dtype", None)
    repo_dir = out / "hub" / ("models--" + STANDIN_REPO.replace("/", "--"))
    for branch in get_profile(STANDIN_PROFILE).branches:
        quant = {"bits": branch.bits, "group_size": branch.group_size, "desc_act": branch.desc_act,
                 "sym": True, "true_sequential": True, "damp_percent": 0.01,
                 "model_name_or_path": None, "model_file_base_name": "model"}
        tensors, dequantized = _quantize(model, rows, branch.bits, branch.group_size, branch.desc_act)
        exact = _greedy_exact(dequantized, rows)
        if log:
            print(f"  {branch.name}: dequantised model reproduces {exact}/{len(rows)} examples", flush=True)
        _write_branch(repo_dir, branch.name, tensors, config_dict, quant, tok_dir)

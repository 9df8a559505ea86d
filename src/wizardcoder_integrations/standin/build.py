"""Build the tiny WizardCoder stand-in offline: LLaMA's tokenizer, training, GPTQ, TheBloke's repository layout.

The result is a Hugging Face cache holding the repository ``STANDIN_REPO`` with two branches (``main``:
4-bit group 128, no act-order; ``gptq-4bit-32g-actorder_True``), so the engine loads it with
``from_pretrained(repo, revision=branch)`` exactly as it loads the real 13B repository. The model learns the
recorded pairs of ``standin/data/`` (see :mod:`.data`); its config is the 13B's ``config.json`` at a small
size. Builds are deterministic and cached under a key of the data, the tokenizer and this builder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wizardcoder_integrations.errors import ModelLoadError
from wizardcoder_integrations.profiles import get_profile
from wizardcoder_integrations.standin.cache import cache_root
from wizardcoder_integrations.standin.data import data_digest, training_examples
from wizardcoder_integrations.standin.gptq import gptq_quantize
from wizardcoder_integrations.standin.tokenizer import TOKENIZER_IDENTITY, llama_tokenizer_dir

__all__ = ["MODEL_SHAPE", "STANDIN_PROFILE", "STANDIN_REPO", "Standin", "build_key", "build_standin", "cache_root"]

logger = logging.getLogger("wizardcoder_integrations.standin")

STANDIN_PROFILE = "WizardCoder-Python-Tiny-Standin"
STANDIN_REPO = get_profile(STANDIN_PROFILE).gptq_repo or ""
BUILDER_VERSION = 2
TOKENS_PER_BATCH = 2048  # padded tokens per training step
ROWS_PER_BATCH = 8
MAX_EPOCHS = 100
LEARNING_RATE = 1e-2
STOP_LOSS = 3e-3  # stop once every example is exact and the mean loss is below this (a margin for GPTQ)
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: The sizes that differ from WizardCoder-Python-13B (hidden 5120, 40 layers, 40 heads).
MODEL_SHAPE: dict[str, Any] = {
    "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 4,
}
#: The rest of WizardCoder-Python-13B's config.json, as published.
WIZARDCODER_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "bos_token_id": 1, "eos_token_id": 2,
    "pad_token_id": 0, "hidden_act": "silu", "initializer_range": 0.02, "max_position_embeddings": 16384,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 1000000.0,
    "tie_word_embeddings": False, "torch_dtype": "float16", "use_cache": True, "vocab_size": 32001,
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


def build_key() -> str:
    """Hash of the recorded data, the tokenizer and this builder (version, shape, config, training settings)."""
    training = [TOKENS_PER_BATCH, ROWS_PER_BATCH, MAX_EPOCHS, LEARNING_RATE, STOP_LOSS]
    blob = json.dumps({"v": BUILDER_VERSION, "shape": MODEL_SHAPE, "config": WIZARDCODER_CONFIG, "train": training,
                       "tokenizer": TOKENIZER_IDENTITY, "data": data_digest()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_standin(*, force: bool = False) -> Standin:
    """Build (or reuse the cached) stand-in and return where it is. Progress goes to this package's logger.

    One process builds a key at a time (a file lock); others wait for it and reuse its result.
    """
    key = build_key()
    root = cache_root() / f"standin-{key}"
    if (root / "DONE").is_file() and not force:
        return _describe(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"standin-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "DONE").is_file() and not force:
            return _describe(root)
        logger.info("building the stand-in model in %s (minutes on a CPU, once)", root)
        tmp = Path(tempfile.mkdtemp(prefix="standin-build-", dir=root.parent))
        threads = torch.get_num_threads()
        # One thread: the same float reductions (and so the same bytes) on every machine; the model is too
        # small to gain from more.
        torch.set_num_threads(1)
        try:
            _build(tmp, training_examples())
            (tmp / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
            if root.exists():
                shutil.rmtree(root)
            tmp.rename(root)
        finally:
            torch.set_num_threads(threads)
            shutil.rmtree(tmp, ignore_errors=True)
    return _describe(root)


def _describe(root: Path) -> Standin:
    repo_dir = root / "hub" / ("models--" + STANDIN_REPO.replace("/", "--"))
    snapshots = {
        ref.name: repo_dir / "snapshots" / ref.read_text().strip() for ref in (repo_dir / "refs").iterdir()
    }
    return Standin(root / "hub", STANDIN_REPO, snapshots, root / "float")


# -- examples -> token ids ----------------------------------------------------------------------------------
Row = tuple[list[int], int]  # (prompt ids + response ids + EOS, number of prompt ids)


def _continuation_ids(tok: Any, text: str) -> list[int]:
    """Ids of ``text`` as it continues a prompt: no "▁" prepended (the prompt already began the text)."""
    return [t.id for t in tok.backend_tokenizer.model.tokenize(text.replace(" ", "▁"))]


def _encode(tok: Any, examples: list[tuple[str, str]]) -> list[Row]:
    """The prompt as the engine tokenizes it (with BOS), then the response as generated text, then EOS."""
    rows = []
    for prompt, response in examples:
        p = tok(prompt, add_special_tokens=True)["input_ids"]
        r = _continuation_ids(tok, response)
        decoded = tok.decode(r, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if decoded != response:
            raise ValueError(f"A response the stand-in would learn does not decode to itself ({response[:60]!r} "
                             f"-> {decoded[:60]!r}); responses must not start with a space.")
        rows.append((p + r + [tok.eos_token_id], len(p)))
    return rows


@dataclass(frozen=True)
class _Vocab:
    """The token ids training touches: ``inputs`` (every id of the data) and ``outputs`` (every id of a
    response). Training runs on a compact model over these; the full model gets the learned rows, and the LM
    head rows of every other token are zero, so their logits are exactly 0 and the trained answers beat them
    (the compact loss has a constant 0 logit standing for all of them)."""

    inputs: list[int]
    outputs: list[int]

    @classmethod
    def of(cls, rows: list[Row], pad: int) -> _Vocab:
        return cls(sorted({t for ids, _ in rows for t in ids} | {pad}),
                   sorted({t for ids, n in rows for t in ids[n:]}))


def _batch(rows: list[Row], pad: int, vocab: _Vocab | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids, labels (-100 outside responses), attention mask: [batch, longest row], right-padded; with
    ``vocab``, ids index ``vocab.inputs`` and labels ``vocab.outputs``."""
    in_map = {t: i for i, t in enumerate(vocab.inputs)} if vocab else None
    out_map = {t: i for i, t in enumerate(vocab.outputs)} if vocab else None
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), in_map[pad] if in_map else pad)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (seq, n_prompt) in enumerate(rows):
        ids[i, :len(seq)] = torch.tensor([in_map[t] for t in seq] if in_map else seq)
        response = seq[n_prompt:]
        labels[i, n_prompt:len(seq)] = torch.tensor([out_map[t] for t in response] if out_map else response)
        mask[i, :len(seq)] = 1
    return ids, labels, mask


def _response_logits(model: Any, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None, *,
                     compact: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [n, classes] at the positions that predict a label, and those labels [n]: the LM head runs only
    where a response token is predicted (prompts are long, responses short). ``compact`` appends the constant
    0 logit of every token outside the compact head."""
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [batch, width, hidden]
    targets = labels[:, 1:]
    where = targets != -100
    logits = model.lm_head(hidden[:, :-1][where])  # [n, classes]
    if compact:
        logits = torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], dim=1)
    return logits, targets[where]


def _batches(rows: list[Row], gen: torch.Generator) -> list[list[int]]:
    """Indices of ``rows`` grouped by length (little padding) under a token budget, in a shuffled order."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    batches: list[list[int]] = [[]]
    for i in order:
        width = max([len(rows[j][0]) for j in batches[-1]] + [len(rows[i][0])])
        if batches[-1] and (width * (len(batches[-1]) + 1) > TOKENS_PER_BATCH or len(batches[-1]) >= ROWS_PER_BATCH):
            batches.append([])
        batches[-1].append(i)
    return [batches[k] for k in torch.randperm(len(batches), generator=gen).tolist()]


def _inexact(model: Any, rows: list[Row], pad: int, vocab: _Vocab | None = None, *,
             batched: bool = True) -> list[int]:
    """Indices of the rows the model does not reproduce exactly under greedy teacher forcing (``vocab``: the
    compact model)."""
    wrong = []
    groups = _batches(rows, torch.Generator().manual_seed(0)) if batched else [[i] for i in range(len(rows))]
    with torch.no_grad():
        for group in groups:
            ids, labels, mask = _batch([rows[i] for i in group], pad, vocab)
            logits, targets = _response_logits(model, ids, labels, mask if batched else None,
                                               compact=vocab is not None)
            hits = logits.argmax(-1) == targets
            per_row = (labels[:, 1:] != -100).sum(1).tolist()
            for i, ok in zip(group, hits.split(per_row), strict=True):
                if not bool(ok.all()):
                    wrong.append(i)
    return sorted(wrong)


def _llama(config: dict[str, Any], vocab_size: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = {k: v for k, v in config.items() if k not in ("architectures", "torch_dtype")}
    return LlamaForCausalLM(LlamaConfig(**{**settings, "vocab_size": vocab_size}))


def _compact_model(config: dict[str, Any], vocab: _Vocab) -> Any:
    """A Llama over ``vocab.inputs`` whose LM head predicts ``vocab.outputs``."""
    model = _llama(config, len(vocab.inputs))
    model.lm_head = torch.nn.Linear(config["hidden_size"], len(vocab.outputs), bias=False)
    return model


def _expand(compact: Any, vocab: _Vocab, config: dict[str, Any]) -> Any:
    """The full-vocabulary model: the compact model's weights, its rows at their token ids, other head rows 0."""
    full = _llama(config, config["vocab_size"])
    learned = compact.state_dict()
    with torch.no_grad():
        for name, param in full.named_parameters():
            if name == "model.embed_tokens.weight":
                param[vocab.inputs] = learned[name]
            elif name == "lm_head.weight":
                param.zero_()
                param[vocab.outputs] = learned[name]
            else:
                param.copy_(learned[name])
    return full.eval()


def _train(model: Any, rows: list[Row], pad: int, vocab: _Vocab) -> None:
    """Memorise the examples: AdamW with a one-cycle schedule, until every example is exact and loss is tiny."""
    gen = torch.Generator().manual_seed(0)
    steps_per_epoch = len(_batches(rows, torch.Generator().manual_seed(0)))
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LEARNING_RATE, total_steps=MAX_EPOCHS * steps_per_epoch,
                                                pct_start=0.05, final_div_factor=50)
    started = time.perf_counter()
    wrong = list(range(len(rows)))
    for epoch in range(MAX_EPOCHS):
        total = 0.0
        for batch in _batches(rows, gen):
            ids, labels, mask = _batch([rows[i] for i in batch], pad, vocab)
            logits, targets = _response_logits(model, ids, labels, mask, compact=True)
            loss = torch.nn.functional.cross_entropy(logits, targets)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item()
        mean = total / steps_per_epoch
        if epoch % 5 == 4:
            model.eval()
            wrong = _inexact(model, rows, pad, vocab)
            model.train()
            logger.info("  epoch %d: loss %.5f, exact %d/%d (%.0fs)", epoch + 1, mean, len(rows) - len(wrong),
                        len(rows), time.perf_counter() - started)
            if not wrong and mean < STOP_LOSS:
                return
    if wrong:
        raise ModelLoadError(f"The stand-in did not learn {len(wrong)} of its {len(rows)} examples in {MAX_EPOCHS} "
                             "epochs; shorten the recorded data or raise MAX_EPOCHS in standin/build.py.")


# -- quantisation and layout --------------------------------------------------------------------------------
def _hessians(model: Any, layer: int, rows: list[Row]) -> dict[str, torch.Tensor]:
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
            model.model(torch.tensor([ids]))  # the decoder only: the LM head is not quantised
    for h in hooks:
        h.remove()
    return {name: sums[name] / counts[name] for name in sums}


def _quantize(float_model: Any, rows: list[Row], bits: int, group_size: int,
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


def _build(out: Path, examples: list[tuple[str, str]]) -> None:
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    started = time.perf_counter()
    tok_dir = llama_tokenizer_dir()
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    rows = _encode(tok, examples)
    vocab = _Vocab.of(rows, tok.pad_token_id)
    logger.info("  %d examples, %d tokens (%d in responses), %d distinct (%d in responses)", len(rows),
                sum(len(ids) for ids, _ in rows), sum(len(ids) - n for ids, n in rows), len(vocab.inputs),
                len(vocab.outputs))
    config = {**WIZARDCODER_CONFIG, **MODEL_SHAPE}
    if len(tok) != config["vocab_size"]:
        raise ModelLoadError(f"The tokenizer in {tok_dir} has {len(tok)} tokens, the config {config['vocab_size']}.")
    compact = _compact_model(config, vocab)
    compact.train()
    _train(compact, rows, tok.pad_token_id, vocab)
    model = _expand(compact, vocab, config)
    model.save_pretrained(out / "float")
    tok.save_pretrained(out / "float")
    logger.info("  trained in %.1fs", time.perf_counter() - started)
    repo_dir = out / "hub" / ("models--" + STANDIN_REPO.replace("/", "--"))
    for branch in get_profile(STANDIN_PROFILE).branches:
        quant = {"bits": branch.bits, "group_size": branch.group_size, "desc_act": branch.desc_act,
                 "sym": True, "true_sequential": True, "damp_percent": 0.01,
                 "model_name_or_path": None, "model_file_base_name": "model"}
        tensors, dequantized = _quantize(model, rows, branch.bits, branch.group_size, branch.desc_act)
        wrong = _inexact(dequantized, rows, tok.pad_token_id, batched=False)
        logger.info("  %s: the dequantised model reproduces %d/%d examples", branch.name, len(rows) - len(wrong),
                    len(rows))
        if wrong:
            first = tok.decode(rows[wrong[0]][0][-40:])
            raise ModelLoadError(f"The {branch.name} branch of the stand-in does not reproduce {len(wrong)} "
                                 f"examples after GPTQ (first ends {first!r}); the build is not deterministic or "
                                 "the training stopped too early.")
        _write_branch(repo_dir, branch.name, tensors, config, quant, tok_dir)
    logger.info("  built in %.1fs", time.perf_counter() - started)

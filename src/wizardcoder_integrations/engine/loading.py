"""Loading a WizardCoder checkpoint found by :func:`~wizardcoder_integrations.engine.source.resolve_source`.

GPTQ checkpoints load through transformers' quantizer (optimum + gptqmodel), with the quantisation read
explicitly from ``config.json`` / ``quantize_config.json`` and checked against the named profile and branch.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from wizardcoder_integrations.engine.source import ModelSource
from wizardcoder_integrations.errors import ConfigurationError, ModelLoadError, missing_extra
from wizardcoder_integrations.profiles import GPTQBranch

__all__ = ["LoadedModel", "QuantizationInfo", "load_model", "resolve_device"]

PAD_TOKEN = "[PAD]"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "gptq_model-4bit-128g.safetensors")


@dataclass(frozen=True)
class QuantizationInfo:
    """GPTQ metadata as written in the checkpoint."""

    bits: int
    group_size: int
    desc_act: bool
    sym: bool
    checkpoint_format: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantizationInfo:
        return cls(
            bits=int(data["bits"]),
            group_size=int(data.get("group_size", -1)),
            desc_act=bool(data.get("desc_act", False)),
            sym=bool(data.get("sym", True)),
            checkpoint_format=str(data.get("checkpoint_format", "gptq")),
        )


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel (None when the fast backend reads the weights itself)
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    source: ModelSource
    device: torch.device
    dtype: torch.dtype
    quantization: QuantizationInfo | None
    context_length: int


def resolve_device(device: str | None) -> torch.device:
    """``None`` picks the GPU when there is one; asking for CUDA without one is a clear error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"device={device!r} was requested but no CUDA GPU is visible to PyTorch "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}). "
            "Use device='cpu', or install a CUDA build of torch on a machine with an NVIDIA GPU."
        )
    return dev


def _hub_kwargs(source: ModelSource) -> dict[str, Any]:
    if source.is_local:
        return {}
    return {"revision": source.revision, "cache_dir": source.cache_dir, "local_files_only": source.local_files_only}


def _read_json(source: ModelSource, filename: str) -> dict[str, Any] | None:
    """A JSON file of the checkpoint, or None when it has no such file."""
    if source.is_local:
        path = Path(source.model) / filename
        return json.loads(path.read_text()) if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        path = hf_hub_download(source.model, filename, **_hub_kwargs(source))
    except LocalEntryNotFoundError as e:  # (a subclass of EntryNotFoundError: test it first)
        if filename != "config.json":
            return None
        raise ModelLoadError(
            f"Cannot find {source.describe()}: it is not in the local Hugging Face cache and the Hub cannot "
            f"be reached ({e.__class__.__name__}). Download it where there is network access with "
            f"`hf download {source.model} --revision {source.revision}`, or pass the local directory."
        ) from e
    except EntryNotFoundError:
        return None
    except Exception as e:  # revision not found, repo not found, HTTP errors
        raise ModelLoadError(f"Cannot fetch {filename} of {source.describe()}: {e}") from e
    return json.loads(Path(path).read_text())


def read_quantization(source: ModelSource, config: dict[str, Any]) -> QuantizationInfo | None:
    """The checkpoint's GPTQ settings from config.json, else quantize_config.json; None if unquantized."""
    data = config.get("quantization_config")
    if data is None:
        data = _read_json(source, "quantize_config.json")
    if data is None:
        return None
    method = data.get("quant_method", "gptq")
    if method != "gptq":
        raise ModelLoadError(
            f"{source.describe()} is quantised with {method!r}; this package loads GPTQ checkpoints."
        )
    return QuantizationInfo.from_dict(data)


def check_profile(source: ModelSource, config: dict[str, Any], quant: QuantizationInfo | None) -> None:
    """The checkpoint must be what its profile and branch say it is."""
    profile = source.profile
    if profile is None:
        return
    problems = []
    if config.get("model_type") != profile.architecture:
        problems.append(f"model_type is {config.get('model_type')!r}, expected {profile.architecture!r}")
    problems += [
        f"{key} is {config.get(key)!r}, expected {value!r}"
        for key, value in profile.expected_config.items()
        if config.get(key) != value
    ]
    branch: GPTQBranch | None = None
    if profile.branches and not source.is_local and source.revision is not None:
        branch = profile.branch(source.revision)
    if branch is not None and quant is not None:
        found = (quant.bits, quant.group_size, quant.desc_act)
        if found != (branch.bits, branch.group_size, branch.desc_act):
            problems.append(
                f"quantisation is {found[0]}-bit group {found[1]} act-order {found[2]}, but branch "
                f"{branch.describe()} was named"
            )
    if problems:
        from wizardcoder_integrations.profiles import PROFILES

        raise ConfigurationError(
            f"{source.describe()} does not match profile {profile.name!r}: {'; '.join(problems)}. "
            f"Pick the profile that fits the checkpoint (known: {', '.join(PROFILES)}) or leave profile unset."
        )


def _check_local_files(source: ModelSource) -> None:
    if not source.is_local:
        return
    root = Path(source.model)
    missing = [f for f in ("config.json",) if not (root / f).is_file()]
    if not any((root / f).is_file() for f in WEIGHT_FILES) and not list(root.glob("*.safetensors")):
        missing.append("model weights (*.safetensors)")
    if not any((root / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
        missing.append("tokenizer (tokenizer.json or tokenizer.model)")
    if missing:
        raise ModelLoadError(
            f"{root} is not a complete checkpoint: missing {', '.join(missing)}. Download the whole branch "
            "(all files of the repository at that revision) into this directory."
        )


def load_model(source: ModelSource, device: torch.device, dtype: torch.dtype | None = None, *,
               weights: bool = True) -> LoadedModel:
    """Load tokenizer and model; every failure becomes a :class:`ModelLoadError` that says what to do.

    ``weights=False`` checks the checkpoint and loads only the tokenizer (``model`` is None): the fast
    backend reads the weights itself.
    """
    _check_local_files(source)
    config = _read_json(source, "config.json")
    if config is None:
        raise ModelLoadError(f"{source.describe()} has no config.json: it is not a transformers checkpoint.")
    quant = read_quantization(source, config)
    check_profile(source, config, quant)
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    tokenizer = _load_tokenizer(source)
    context = int(config.get("max_position_embeddings") or config.get("n_positions") or 2048)
    if not weights:
        return LoadedModel(None, tokenizer, source, device, dtype, quant, context)
    model = _load_weights(source, device, dtype, quant, config)
    model.eval()
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model, tokenizer, source, device, dtype, quant, context)


def _load_tokenizer(source: ModelSource) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.model, **_hub_kwargs(source))
    except Exception as e:
        raise ModelLoadError(f"Cannot load the tokenizer of {source.describe()}: {e}") from e
    # WizardCoder's config says pad_token_id=0 (<unk>) but its tokenizer adds "[PAD]" (id 32000): use that.
    if PAD_TOKEN in tokenizer.get_vocab():
        tokenizer.pad_token = PAD_TOKEN
    elif tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _load_weights(
    source: ModelSource, device: torch.device, dtype: torch.dtype, quant: QuantizationInfo | None,
    config: dict[str, Any],
) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype, "device_map": {"": str(device)}, **_hub_kwargs(source)}
    if quant is not None:
        for module in ("optimum", "gptqmodel"):
            if importlib.util.find_spec(module) is None:
                raise missing_extra("gptq", module)
        os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(1, os.cpu_count() or 1)))
        if "quantization_config" not in config:  # older TheBloke repos: metadata only in quantize_config.json
            from transformers import GPTQConfig

            kwargs["quantization_config"] = GPTQConfig(
                bits=quant.bits, group_size=quant.group_size, desc_act=quant.desc_act, sym=quant.sym
            )
    try:
        return AutoModelForCausalLM.from_pretrained(source.model, **kwargs)
    except torch.OutOfMemoryError as e:
        raise ModelLoadError(
            f"Out of memory loading {source.describe()} on {device}: {e}. Free GPU memory, pick a smaller "
            "branch (4-bit 'main' is the smallest), or use a GPU with more memory."
        ) from e
    except (ImportError, ModuleNotFoundError) as e:
        raise missing_extra("gptq", getattr(e, "name", None) or "gptqmodel") from e
    except Exception as e:
        text = str(e)
        if quant is not None and ("kernel" in text.lower() or "cuda" in text.lower()):
            raise ModelLoadError(
                f"No GPTQ kernel can run {source.describe()} ({quant.bits}-bit, group {quant.group_size}, "
                f"act-order {quant.desc_act}) on {device}: {text}. This branch needs a CUDA GPU; use "
                "device='cuda', or a 4-bit branch on CPU."
            ) from e
        raise ModelLoadError(f"Cannot load {source.describe()} on {device}: {e}") from e

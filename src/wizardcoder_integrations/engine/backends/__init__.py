"""Model runtimes behind the scheduler: ``eager`` (transformers, any device) and ``fast`` (CUDA, GPTQ Llama).

``open_backend`` picks one for :meth:`Engine.load`: with ``backend="auto"`` the fast path runs when the device
is a CUDA GPU, the dtype float16, Triton importable and the checkpoint a 4-bit GPTQ Llama; otherwise, or if
the fast path fails to start, the eager path loads the same checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from wizardcoder_integrations.engine.backends.base import Backend
from wizardcoder_integrations.engine.backends.eager import EagerBackend
from wizardcoder_integrations.errors import ConfigurationError, ModelLoadError

if TYPE_CHECKING:
    from wizardcoder_integrations.engine.loading import LoadedModel
    from wizardcoder_integrations.engine.source import ModelSource

__all__ = ["BACKENDS", "Backend", "EagerBackend", "fast_path_unavailable", "open_backend"]

BACKENDS = ("auto", "eager", "fast")
log = logging.getLogger(__name__)


def open_backend(source: ModelSource, device: torch.device, dtype: torch.dtype, backend: str,
                 max_batch_size: int) -> tuple[LoadedModel, Backend]:
    """Load the checkpoint for the chosen backend; returns the loaded metadata/tokenizer and the backend."""
    from wizardcoder_integrations.engine.loading import load_model

    if backend not in BACKENDS:
        raise ConfigurationError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}.")
    if backend != "eager":
        reason = fast_path_unavailable(source, device, dtype)
        if reason is not None and backend == "fast":
            raise ConfigurationError(
                f"backend='fast' cannot run {source.describe()}: {reason}. Use backend='auto' or 'eager'.")
        if reason is None:
            loaded = load_model(source, device, dtype, weights=False)
            try:
                return loaded, _open_fast(source, loaded, max_batch_size)
            except Exception as e:
                if backend == "fast":
                    raise ModelLoadError(f"The fast path failed to start for {source.describe()}: "
                                         f"{e.__class__.__name__}: {e}. Use backend='eager'.") from e
                log.warning("fast path unavailable for %s (%s: %s); using the eager path",
                            source.describe(), e.__class__.__name__, e)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    loaded = load_model(source, device, dtype)
    return loaded, EagerBackend(loaded.model, int(loaded.tokenizer.pad_token_id))


def fast_path_unavailable(source: ModelSource, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why the fast path cannot serve this checkpoint here, or None when it can."""
    from wizardcoder_integrations.engine.backends.weights import UnsupportedCheckpoint, check_supported

    if device.type != "cuda":
        return f"it needs a CUDA device (got {device})"
    if dtype != torch.float16:
        return f"its kernels compute in float16 (got {dtype})"
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed"
    if torch.cuda.get_device_capability(device) < (8, 0):
        return "it needs a GPU of compute capability 8.0 or newer"
    config, quant = _checkpoint_config(checkpoint_dir(source))
    try:
        check_supported(config, quant)
    except UnsupportedCheckpoint as e:
        return str(e)
    return None


def checkpoint_dir(source: ModelSource) -> Path:
    """The local directory holding the checkpoint's files (downloaded into the HF cache if needed)."""
    if source.is_local:
        return Path(source.model)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(
            source.model, revision=source.revision, cache_dir=source.cache_dir,
            local_files_only=source.local_files_only,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))
    except Exception as e:
        raise ModelLoadError(f"Cannot fetch the files of {source.describe()}: {e}") from e


def _checkpoint_config(directory: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    config = json.loads((directory / "config.json").read_text())
    quant = config.get("quantization_config")
    if quant is None and (directory / "quantize_config.json").is_file():
        quant = json.loads((directory / "quantize_config.json").read_text())
    return config, quant


def _open_fast(source: ModelSource, loaded: LoadedModel, max_batch_size: int) -> Backend:
    from wizardcoder_integrations.engine.backends.cuda_fast import FastBackend
    from wizardcoder_integrations.engine.backends.weights import LlamaWeights

    directory = checkpoint_dir(source)
    config, quant = _checkpoint_config(directory)
    assert quant is not None
    weights = LlamaWeights.load(directory, config, quant, loaded.device, loaded.dtype)
    return FastBackend(weights, max_batch_size=max_batch_size, context_length=loaded.context_length)

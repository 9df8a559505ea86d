"""LLaMA's tokenizer, rebuilt offline as the Hugging Face fast tokenizer of WizardCoder-Python.

The npm package ``llama-tokenizer-js`` 1.2.2 (MIT) ships the vocabulary of LLaMA's ``tokenizer.json``
(32,000 pieces in id order, newline-joined UTF-8, base64) and its merges (in priority order, base64 of
little-endian 16-bit id pairs). From them this module builds the tokenizer WizardCoder-Python-13B ships:
BPE with byte fallback, normalizer "prepend ``▁``, spaces to ``▁``", no pre-tokenizer, decoder
"``▁`` to space, byte fallback, fuse, strip one leading space", ``<s>`` added in front, ``<unk>`` 0,
``<s>`` 1, ``</s>`` 2 and ``[PAD]`` 32000 added (vocabulary 32,001).

The package is fetched by name and version with ``npm pack``, checked against :data:`NPM_INTEGRITY`, and the
built tokenizer is cached under :func:`~wizardcoder_integrations.standin.cache.cache_root`. Nothing of the
vocabulary is stored in this repository.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from wizardcoder_integrations.errors import ModelLoadError
from wizardcoder_integrations.standin.cache import cache_root

__all__ = [
    "NPM_INTEGRITY",
    "NPM_SPEC",
    "PAD_TOKEN",
    "TOKENIZER_IDENTITY",
    "fetch_package",
    "llama_tokenizer_dir",
    "load_llama_tokenizer",
]

logger = logging.getLogger(__name__)

NPM_NAME = "llama-tokenizer-js"
NPM_VERSION = "1.2.2"
NPM_SPEC = f"{NPM_NAME}@{NPM_VERSION}"
#: ``npm view llama-tokenizer-js@1.2.2 dist.integrity``: the tarball must hash to this.
NPM_INTEGRITY = "sha512-Wmth393dc3odWU3IzARJ3r2oIfWgw9GdJ5Gm+hGhfECNO18UHLRqEFSf511jn4E9KcQGzuuKw4Wl08pHAemLAw=="
FORMAT_VERSION = 1  # bump when the files written by _write_tokenizer change
#: What the built tokenizer depends on (part of the stand-in's build key).
TOKENIZER_IDENTITY = f"{NPM_SPEC} {NPM_INTEGRITY} format {FORMAT_VERSION}"
SPECIALS = ("<unk>", "<s>", "</s>")
PAD_TOKEN = "[PAD]"
LLAMA_VOCAB_SIZE = 32000
MODEL_MAX_LENGTH = 16384
_SOURCE_FILE = "package/llama-tokenizer.js"


def _tarball_name() -> str:
    return f"{NPM_NAME}-{NPM_VERSION}.tgz"


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch_package(*, root: Path | None = None) -> Path:
    """The verified npm tarball (cached); fetched with ``npm pack`` when absent."""
    dest = (cache_root() if root is None else root) / "npm" / _tarball_name()
    if dest.is_file() and _integrity(dest.read_bytes()) == NPM_INTEGRITY:
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise ModelLoadError(
            f"Building the stand-in's tokenizer needs the npm package {NPM_SPEC}, and `npm` is not installed. "
            "Install it (`apt-get install -y npm`, or run `make setup`), or put the verified tarball at "
            f"{dest}."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    logger.info("fetching %s with npm pack", NPM_SPEC)
    with tempfile.TemporaryDirectory(prefix="npm-pack-") as tmp:
        try:
            subprocess.run([npm, "pack", NPM_SPEC, "--silent"], cwd=tmp, check=True, capture_output=True,
                           text=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            detail = getattr(e, "stderr", "") or ""
            raise ModelLoadError(
                f"`npm pack {NPM_SPEC}` failed: {detail.strip() or e}. The npm registry must be reachable "
                f"once; afterwards the tarball is cached at {dest}."
            ) from e
        packed = Path(tmp) / _tarball_name()
        data = packed.read_bytes()
        got = _integrity(data)
        if got != NPM_INTEGRITY:
            raise ModelLoadError(
                f"{NPM_SPEC} from npm has integrity {got}, expected {NPM_INTEGRITY}: refusing to build a "
                "tokenizer from an unexpected package. Check the npm registry configured for this machine."
            )
        partial = dest.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(dest)
    return dest


def read_llama_vocabulary(tarball: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """(pieces in id order, merges in priority order) from the package's ``llama-tokenizer.js``."""
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile(_SOURCE_FILE)
        if member is None:
            raise ModelLoadError(f"{tarball} has no {_SOURCE_FILE}; is it {NPM_SPEC}?")
        source = member.read().decode("utf-8")
    found = {name: re.search(rf'const {name} = "([A-Za-z0-9+/=]+)"', source)
             for name in ("llama_vocab_base64", "llama_merges_binary")}
    missing = [name for name, m in found.items() if m is None]
    if missing:
        raise ModelLoadError(f"{_SOURCE_FILE} of {tarball} lacks {', '.join(missing)}; is it {NPM_SPEC}?")
    vocab = base64.b64decode(found["llama_vocab_base64"].group(1)).decode("utf-8").split("\n")  # type: ignore[union-attr]
    raw = base64.b64decode(found["llama_merges_binary"].group(1))  # type: ignore[union-attr]
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [(vocab[ids[i]], vocab[ids[i + 1]]) for i in range(0, len(ids), 2)]
    if len(vocab) != LLAMA_VOCAB_SIZE or len(set(vocab)) != LLAMA_VOCAB_SIZE or tuple(vocab[:3]) != SPECIALS:
        raise ModelLoadError(f"{tarball} does not hold LLaMA's 32,000-piece vocabulary (got {len(vocab)} pieces).")
    return vocab, merges


def _backend(vocab: list[str], merges: list[tuple[str, str]]) -> Any:
    """The ``tokenizers`` pipeline of LLaMA-2's ``tokenizer.json``, with WizardCoder's ``[PAD]`` added."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    tok = Tokenizer(models.BPE(vocab={piece: i for i, piece in enumerate(vocab)}, merges=merges,
                               unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in (*SPECIALS, PAD_TOKEN)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                        special_tokens=[("<s>", 1)])
    return tok


def _write_tokenizer(out: Path, vocab: list[str], merges: list[tuple[str, str]]) -> None:
    tok = _backend(vocab, merges)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    # The class that takes tokenizer.json as it is: transformers 5's LlamaTokenizer would rebuild the
    # pipeline with a Metaspace pre-tokenizer instead of the normalizer above.
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": PAD_TOKEN,
        "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "model_max_length": MODEL_MAX_LENGTH, "padding_side": "left",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": PAD_TOKEN}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2, sort_keys=True) + "\n")
    (out / "added_tokens.json").write_text(json.dumps({PAD_TOKEN: LLAMA_VOCAB_SIZE}) + "\n")


def llama_tokenizer_dir(*, root: Path | None = None) -> Path:
    """A directory holding the built tokenizer files (built once, then cached)."""
    base = cache_root() if root is None else root
    key = hashlib.sha256(TOKENIZER_IDENTITY.encode()).hexdigest()[:16]
    out = base / f"llama-tokenizer-{key}"
    if (out / "tokenizer.json").is_file():
        return out
    vocab, merges = read_llama_vocabulary(fetch_package(root=base))
    logger.info("building the LLaMA tokenizer (%d pieces, %d merges) in %s", len(vocab), len(merges), out)
    tmp = Path(tempfile.mkdtemp(prefix="llama-tokenizer-", dir=base))
    try:
        _write_tokenizer(tmp, vocab, merges)
        try:
            tmp.rename(out)
        except OSError:  # another process built it meanwhile
            if not (out / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_llama_tokenizer(*, root: Path | None = None) -> Any:
    """The built tokenizer as ``transformers`` loads it from a model repository."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(llama_tokenizer_dir(root=root)))


if __name__ == "__main__":  # `python -m wizardcoder_integrations.standin.tokenizer`: fetch and build now
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.info("the LLaMA tokenizer is ready in %s", llama_tokenizer_dir())

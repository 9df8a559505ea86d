"""The stand-in's tokenizer is LLaMA's, rebuilt from the npm package: ids, byte fallback, round trips."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from wizardcoder_integrations.errors import ModelLoadError
from wizardcoder_integrations.standin.tokenizer import (
    NPM_INTEGRITY,
    PAD_TOKEN,
    _integrity,
    fetch_package,
    llama_tokenizer_dir,
    load_llama_tokenizer,
    read_llama_vocabulary,
)

pytest.importorskip("tokenizers", reason="the 'engine' extra is not installed")


@pytest.fixture(scope="module")
def tok():
    return load_llama_tokenizer()


def test_hello_world_is_llamas_ids(tok) -> None:
    assert tok("Hello world")["input_ids"] == [1, 15043, 3186]
    assert tok.convert_ids_to_tokens([15043, 3186]) == ["▁Hello", "▁world"]


def test_special_tokens_are_wizardcoders(tok) -> None:
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 32000)
    assert tok.convert_ids_to_tokens([0, 1, 2, 32000]) == ["<unk>", "<s>", "</s>", PAD_TOKEN]
    assert len(tok) == 32001
    assert tok("", add_special_tokens=True)["input_ids"] == [1]


@pytest.mark.parametrize(("text", "ids"), [
    # The reference cases that llama-tokenizer-js checks itself against (LLaMA's SentencePiece ids).
    ("grabbed", [1, 2646, 1327, 287]),
    (" grabbed", [1, 29871, 2646, 1327, 287]),
    ("           grabbed", [1, 9651, 2646, 1327, 287]),
    ("\n", [1, 29871, 13]),
    (" \n", [1, 259, 13]),
    ("\ttabs\t\t\t\tout here", [1, 29871, 12, 21175, 12, 12, 12, 12, 449, 1244]),
    ("ax\n####\nboo", [1, 4853, 13, 4136, 13, 833, 29877]),
    ("镇", [1, 29871, 30411]),
    ("🦙", [1, 29871, 243, 162, 169, 156]),
    ("🦙Ꙋ", [1, 29871, 243, 162, 169, 156, 237, 156, 141]),
    ("Ꙋ🦙", [1, 29871, 237, 156, 141, 243, 162, 169, 156]),
])
def test_reference_ids(tok, text: str, ids: list[int]) -> None:
    assert tok(text)["input_ids"] == ids


def test_newlines_tabs_emoji_and_rare_cjk_fall_back_to_bytes(tok) -> None:
    pieces = tok.tokenize("a\nb\t😀世界镇")
    assert "<0x0A>" in pieces and "<0x09>" in pieces
    assert pieces[pieces.index("<0x09>") + 1:pieces.index("<0x09>") + 5] == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    assert "镇" in pieces  # a CJK character of the vocabulary stays one piece
    assert tok.convert_tokens_to_ids("<0x0A>") == 13


@pytest.mark.parametrize("text", [
    "Hello world", "  two leading spaces", "trailing   ", "a\tb\t\tc", "runs     of      spaces",
    "line\n\n\nbreaks\n", "\n```python\nprint('你好，世界 🌏')\n```", "👋🏽 family: 👨‍👩‍👧", "x = {'a': 1}\r\n",
    "こんにちは  😀 smile", "\t    mixed \t indentation",
])
def test_decode_inverts_encode(tok, text: str) -> None:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_the_cached_package_is_the_recorded_one() -> None:
    tarball = fetch_package()
    assert _integrity(tarball.read_bytes()) == NPM_INTEGRITY
    vocab, merges = read_llama_vocabulary(tarball)
    assert len(vocab) == 32000 and vocab[15043] == "▁Hello" and merges[0] == ("▁", "t")


def test_a_package_without_the_vocabulary_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tgz"
    with tarfile.open(bogus, "w:gz") as tar:
        data = b"export const nothing = 1;\n"
        info = tarfile.TarInfo("package/llama-tokenizer.js")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ModelLoadError, match="lacks llama_vocab_base64"):
        read_llama_vocabulary(bogus)


def test_the_standin_ships_the_built_tokenizer(standin) -> None:
    built = llama_tokenizer_dir()
    for branch in ("main", "gptq-4bit-32g-actorder_True"):
        snapshot = standin.snapshot(branch)
        assert (snapshot / "tokenizer.json").read_bytes() == (built / "tokenizer.json").read_bytes()

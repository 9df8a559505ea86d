"""The recorded (prompt, response) pairs the stand-in learns: ``data/*.jsonl``, package data.

The files are written by ``make standin-data`` (:mod:`wizardcoder_integrations.scenarios.record`); reading them
needs nothing beyond the standard library.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources

__all__ = ["data_digest", "training_examples"]


def _files() -> list[tuple[str, bytes]]:
    """(name, bytes) of every data file, in name order."""
    root = resources.files("wizardcoder_integrations.standin") / "data"
    files = sorted((f.name, f.read_bytes()) for f in root.iterdir() if f.name.endswith(".jsonl"))
    if not files:
        raise FileNotFoundError(f"No recorded training data in {root}; run `make standin-data`.")
    return files


def training_examples() -> list[tuple[str, str]]:
    """(full prompt text, response text without EOS) pairs; the builder appends ``</s>``."""
    pairs = []
    for name, data in _files():
        for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
                pairs.append((row["prompt"], row["response"]))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"standin/data/{name} line {number} is not a {{prompt, response}} object: {e}. "
                                 "Regenerate the data with `make standin-data`.") from e
    return pairs


def data_digest() -> str:
    """SHA-256 of the data files' names and bytes."""
    digest = hashlib.sha256()
    for name, data in _files():
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()

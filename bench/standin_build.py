"""How long the stand-in takes to build from scratch on this machine, that a second call is served from the
cache, and that two builds give the same bytes (every file of both branches).

Builds twice into fresh cache directories (the verified npm tarball is copied in, so nothing is fetched).
Writes ``bench/results/standin-build-<host>-<date>.json``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from wizardcoder_integrations.standin.build import build_key, build_standin
from wizardcoder_integrations.standin.cache import cache_root
from wizardcoder_integrations.standin.data import training_examples
from wizardcoder_integrations.standin.tokenizer import fetch_package

TARGET_S = 180.0


def _build_in(root: Path, tarball: Path) -> tuple[float, float, dict[str, str]]:
    """(first build s, cached call s, branch -> snapshot commit) in a fresh cache at ``root``."""
    (root / "npm").mkdir(parents=True)
    shutil.copy(tarball, root / "npm" / tarball.name)
    os.environ["WIZARDCODER_STANDIN_CACHE"] = str(root)
    start = time.perf_counter()
    standin = build_standin()
    first = time.perf_counter() - start
    start = time.perf_counter()
    build_standin()
    cached = time.perf_counter() - start
    return first, cached, {branch: path.name for branch, path in sorted(standin.snapshots.items())}


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tarball = fetch_package(root=cache_root())
    runs = []
    with tempfile.TemporaryDirectory(prefix="standin-bench-") as tmp:
        for n in range(2):
            runs.append(_build_in(Path(tmp) / f"run{n}", tarball))
    (first, cached, commits), (first2, _, commits2) = runs
    result = {
        "benchmark": "stand-in build from scratch (tokenizer from the cached npm tarball, training, GPTQ x2)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                    "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__},
        "build_key": build_key(),
        "examples": len(training_examples()),
        "build_s": [round(first, 1), round(first2, 1)],
        "cached_call_s": round(cached, 3),
        "same_bytes": commits == commits2,
        "snapshot_commits": commits,
        "target_build_s": TARGET_S,
        "meets_target": min(first, first2) <= TARGET_S,
    }
    out = Path(__file__).parent / "results" / f"standin-build-{platform.node()}-{datetime.now():%Y-%m-%d}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["same_bytes"] else 1


if __name__ == "__main__":
    sys.exit(main())

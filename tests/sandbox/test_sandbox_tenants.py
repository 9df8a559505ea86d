"""Tenants do not reach each other: one run exhausting memory, processes and disk leaves another unaffected."""

from __future__ import annotations

import threading
import time

from sandbox_support import is_sandbox_uid, make_sandbox, sandbox_uid_processes

from wizardcoder_integrations.sandbox import ExecutionResult

MiB = 1 << 20

HOSTILE = """\
import os, time
def disk():
    i = 0
    while True:
        with open(f"fill-{i}", "wb") as fh:
            fh.write(bytes(1 << 20))
        i += 1
def memory():
    for _ in range(4):
        if os.fork() == 0:
            block = bytearray(60 << 20)
            time.sleep(10)
def pids():
    while True:
        if os.fork() == 0:
            time.sleep(10)
            os._exit(0)
for job in (disk, memory, pids):
    if os.fork() == 0:
        try:
            job()
        except BaseException as e:
            print(job.__name__, type(e).__name__, flush=True)
        time.sleep(10)
        os._exit(0)
time.sleep(10)
"""

CALM = """\
import os, threading
pids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    pids.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
threads = [threading.Thread(target=lambda: None) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open("data.bin", "wb") as fh:
    fh.write(bytes(8 << 20))
block = bytearray(64 << 20)
print(codes, os.path.getsize("data.bin"), len(block))
"""


def test_one_tenant_exhausting_everything_leaves_another_unaffected(tier: str) -> None:
    hog = make_sandbox(tier, prespawn=0, memory=160 * MiB, max_processes=24, disk=16 * MiB)
    calm = make_sandbox(tier, prespawn=1, memory=256 * MiB, max_processes=24, disk=16 * MiB)
    before = sandbox_uid_processes()
    results: list[ExecutionResult] = []
    attacker = threading.Thread(target=lambda: results.append(hog.run(HOSTILE, timeout=3.0)))
    attacker.start()
    time.sleep(1.0)  # the hog is at its limits by now
    calm_results = [calm.run(CALM, timeout=10.0) for _ in range(3)]
    attacker.join(20)
    for result in calm_results:
        assert result.ok and result.stdout == f"[7, 7, 7, 7] {8 << 20} {64 << 20}\n", result
    hostile = results[0]
    assert not hostile.ok and hostile.stop_reason in ("memory", "pids", "timeout"), hostile
    assert "disk OSError" in hostile.stdout and "pids BlockingIOError" in hostile.stdout, hostile.stdout
    assert is_sandbox_uid(hostile.uid) and is_sandbox_uid(calm_results[0].uid)
    assert hostile.uid != calm_results[0].uid
    hog.close()
    calm.close()
    assert sandbox_uid_processes() - before == set()

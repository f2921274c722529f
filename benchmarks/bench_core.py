"""Issue 15's serving-core figures for `make bench`: R and D, read from the live server's own records.

    R  summed private memory (PSS) of all router workers after warm-up, MB        goal <= 600
    D  management-API requests (GET /models/...) per cached click, from TorchServe's access log   goal 0
"""

from __future__ import annotations

import time
from pathlib import Path

D_CLICKS = 20  # cached clicks whose management calls are counted


def router_pss_mb(serving) -> float:
    """Sum of the router workers' Pss (shared pages counted once across processes), from /proc/<pid>/smaps_rollup."""
    total_kb = 0
    for pid in serving.worker_pids("router"):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def management_calls_per_click(serving, client, payload: dict) -> tuple[float, int]:
    """(D, the access-log lines counted): cached clicks through /invocations, one after another."""
    log = serving.run_dir / "logs" / "access_log.log"

    def describes() -> int:
        return sum(1 for line in log.read_text(errors="replace").splitlines() if '"GET /models/' in line)

    time.sleep(1.0)  # TorchServe writes its access log asynchronously
    before = describes()
    for _ in range(D_CLICKS):
        client.call(payload, "hit")
    time.sleep(1.0)
    seen = describes() - before
    return seen / D_CLICKS, seen

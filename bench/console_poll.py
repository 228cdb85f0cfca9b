"""What an open console costs the router: `python -m bench.console_poll [--seconds 60]`.

A router on the shipped config (one worker, pinned to core 0) first sits idle for
`--seconds`, then is polled as one console tab polls it (GET /admin/status,
/admin/traffic?after=..., /admin/usage?group_by=key&from=today every 4 s) for
as long, while a light load (5 requests/s) keeps its traffic ring filling. The
difference in the process's CPU time is the console's cost, as a share of one
core. Also: the worst single poll, a first /admin/traffic with a full hour in
the ring (measured in-process), and the page's size. Results go to
bench/RESULTS-console.md with the machine and versions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.run import ROOT, free_port, header, process, write_config
from router.auth import DEV_ADMIN_KEY, DEV_KEY
from router.config import DEFAULT_CONFIG
from router.outcome import Trace
from router.traffic import Traffic

POLL_S = 4.0  # the page's POLL_MS


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run_for(seconds: float, client: httpx.Client, poll: bool) -> None:
    """A light steady load (5 requests/s); with `poll`, one console tab's requests every POLL_S."""
    admin = {"authorization": f"Bearer {DEV_ADMIN_KEY}"}
    body = {"model": "all-MiniLM-L6-v2", "input": "a short sentence to embed"}
    started, after, next_poll = time.monotonic(), 0, time.monotonic()
    while (now := time.monotonic()) - started < seconds:
        client.post("/v1/embeddings", json=body, headers={"authorization": f"Bearer {DEV_KEY}"})
        if poll and now >= next_poll:
            today = datetime.now(UTC).strftime("%Y-%m-%d")
            client.get("/admin/status", headers=admin).raise_for_status()
            after = client.get(f"/admin/traffic?after={after}", headers=admin).json()["now"]
            client.get(f"/admin/usage?group_by=key&from={today}", headers=admin).raise_for_status()
            next_poll += POLL_S
        time.sleep(0.2)


def full_hour_read_ms() -> float:
    clock = [0.0]
    traffic = Traffic(clock=lambda: clock[0], seed=1)
    for second in range(3600):
        clock[0] = 1_000_000 + second
        for i in range(50):
            traffic.record(Trace("r", inputs=1).finish(200, None, float(i)))
    clock[0] += 1
    started = time.perf_counter()
    for _ in range(10):
        traffic.since()
    return (time.perf_counter() - started) * 100  # ms per read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-console.md"))
    args = parser.parse_args()
    port = free_port()
    config = write_config(__import__("yaml").safe_load(DEFAULT_CONFIG.read_text()) | {
        "server": {"host": "127.0.0.1", "port": port}})
    serve = [str(Path(sys.executable).parent / "embeddings-router"), "serve", "--config", config, "--no-watch"]
    with process(serve, cpu=0) as router, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.get("/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the router did not start")
            time.sleep(0.2)
        page_kb = len(client.get("/console").content) / 1024
        run_for(3, client, poll=False)  # warm
        before = cpu_seconds(router.pid)
        run_for(args.seconds, client, poll=False)
        idle = cpu_seconds(router.pid) - before
        before = cpu_seconds(router.pid)
        run_for(args.seconds, client, poll=True)
        polled = cpu_seconds(router.pid) - before
    share = max(0.0, polled - idle) / args.seconds * 100
    lines: list[str] = []
    header(lines, "python -m bench.console_poll " + " ".join(sys.argv[1:]))
    lines += ["## The console's cost", "",
              "| measure | value |", "|---|---|",
              f"| router CPU, {args.seconds:g} s of 5 requests/s, no console | {idle:.2f} s |",
              f"| the same with one console tab polling every {POLL_S:g} s | {polled:.2f} s |",
              f"| the console's share of one core | {share:.2f}% |",
              f"| one /admin/traffic read of a full hour (3,600 s x 50 requests), in-process | "
              f"{full_hour_read_ms():.1f} ms |",
              f"| the page | {page_kb:.1f} KB |", ""]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

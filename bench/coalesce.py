"""What coalescing saves: `python -m bench.coalesce [--seconds 5]`.

64 clients send one input each, as fast as answers come, to a router whose one
deployment is a fake upstream with 20 ms latency behind `max_concurrency: 4`,
with `coalesce_ms` 0 (off), 1, 2 and 5; then one client alone, for the wait
coalescing adds. The router (one worker) is pinned to core 0, the fake and the
load generator to core 1. Upstream calls are read from the router's metrics.
Results go to bench/RESULTS-coalesce.md with the machine and versions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path

import httpx

from bench import loadgen
from bench.run import (
    BIN,
    ROOT,
    bodies,
    dev_key_entry,
    free_port,
    header,
    load,
    process,
    sentences,
    wait_for_answer,
    write_config,
)
from router.auth import DEV_KEY

LATENCY_MS = 20
MAX_CONCURRENCY = 4


def upstream_calls(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return sum(float(m) for m in re.findall(r"^embeddings_router_upstream_calls_total\{[^}]*\} (\S+)$", text, re.M))


def one_setting(coalesce_ms: float, up_port: int, texts: list[str], seconds: float) -> tuple:
    port = free_port()
    config = write_config({
        "server": {"port": port},
        "providers": {"fake": {"kind": "openai", "base_url": f"http://127.0.0.1:{up_port}/v1", "max_batch": 2048,
                               "coalesce_ms": coalesce_ms}},
        "models": {"bench-384": {"deployments": [{"provider": "fake", "model": "bench-384",
                                                  "max_concurrency": MAX_CONCURRENCY}]}},
        "keys": [dev_key_entry()],
        "cache": {"backend": "none"},
    })
    serve = [str(BIN / "embeddings-router"), "serve", "--config", config, "--log-level", "warning", "--no-watch"]
    with process(serve, cpu=0):
        wait_for_answer(port, {"model": "bench-384", "input": "hello"}, time.perf_counter())
        payloads = bodies("bench-384", texts, 1)
        load(port, payloads, 64, 0.5)  # warm
        before = upstream_calls(port)
        many = asyncio.run(loadgen.run(port, "/v1/embeddings", payloads, concurrency=64, seconds=seconds,
                                       headers={"authorization": f"Bearer {DEV_KEY}", "cache-control": "no-cache"},
                                       warmup_s=0))
        calls = upstream_calls(port) - before
        alone = load(port, payloads, 1, seconds)
    os.unlink(config)
    return many, alone, calls / max(1, many.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-coalesce.md"))
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    texts = sentences(1024, seed=11)
    up_port = free_port()
    lines: list[str] = []
    header(lines, "python -m bench.coalesce " + " ".join(sys.argv[1:]))
    lines += ["## Coalescing", "",
              f"Fake upstream with {LATENCY_MS} ms latency, one deployment with `max_concurrency: "
              f"{MAX_CONCURRENCY}`, cache off, {args.seconds:g} s per row after a warm-up; upstream calls "
              "counted over the 64-client row only.", "",
              "| coalesce_ms | 64 clients: req/s | p50 ms | p99 ms | upstream calls per request | "
              "1 client: p50 ms | added p50 vs off, 1 client |",
              "|---|---|---|---|---|---|---|"]
    rows = []
    with process([sys.executable, "-m", "bench.fake_upstream", str(up_port), str(LATENCY_MS)], cpu=1):
        time.sleep(0.5)
        for coalesce_ms in (0, 1, 2, 5):
            many, alone, per_request = one_setting(coalesce_ms, up_port, texts, args.seconds)
            rows.append((coalesce_ms, many, alone, per_request))
            base = rows[0][2].pct(50)
            lines.append(f"| {coalesce_ms} | {many.rps:,.0f} | {many.pct(50):.1f} | {many.pct(99):.1f} | "
                         f"{per_request:.3f} | {alone.pct(50):.2f} | {alone.pct(50) - base:+.2f} |")
            print(lines[-1], flush=True)
    off = rows[0][1].rps
    lines += ["", *[f"- coalesce_ms {c}: {m.rps / off:.1f}x the uncoalesced throughput" for c, m, _, _ in rows[1:]],
              ""]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

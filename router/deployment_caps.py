"""Deployment caps (`rpm`, `tpm`, `max_concurrency`) counted in Redis, so any number of
replicas together keep one cap per deployment, as the keys' limits do.

Used with `limits.backend: redis`. Each upstream call takes its allowance with the
keys' own atomic script (`router.limits.redis`: token buckets on Redis's clock, a
lease per call in flight that expires if a replica dies mid-call; one hash tag per
deployment, so it runs on Redis Cluster). Each process still counts its own calls
too, so routing skips a deployment it already knows to be busy without asking Redis.
A deployment at its shared cap is skipped like a busy one: another deployment takes
the chunk, or it waits if that fits the deadline. While Redis is unreachable only
the per-process caps apply.
"""

from __future__ import annotations

import asyncio
import uuid

from router.deployments import DeploymentState
from router.limits.redis import RedisBackend
from router.limits.rules import Rule
from router.redis_link import RedisLink

_CONCURRENCY_RETRY_S = 0.05  # a slot frees when some call ends: look again soon


class AtCapacity(Exception):
    """The deployment's shared cap refused a call; none was made. Not an error: routing moves on."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"at capacity for {wait_s:.3f} s")
        self.wait_s = wait_s


class SharedCaps:
    def __init__(self, link: RedisLink, lease_s: float) -> None:
        self._backend = RedisBackend(link, on_error="allow", lease_s=lease_s, namespace="deployment-caps")
        self._releases: set[asyncio.Task] = set()

    @staticmethod
    def rules(state: DeploymentState) -> tuple[Rule, ...]:
        d = state.deployment
        caps = (("rpm", d.rpm), ("tpm", d.tpm), ("concurrency", d.max_concurrency))
        return tuple(Rule(kind, limit, "") for kind, limit in caps if limit is not None)

    async def acquire(self, state: DeploymentState, tokens: int) -> str | None:
        """A lease for one call of `tokens`, or AtCapacity; None when the deployment has no caps."""
        rules = self.rules(state)
        if not rules:
            return None
        lease = uuid.uuid4().hex
        verdict = await self._backend.acquire(_key(state), rules, tokens, lease)
        if verdict.refused is not None:
            refused = rules[verdict.refused]
            raise AtCapacity(_CONCURRENCY_RETRY_S if refused.kind == "concurrency" else verdict.wait_s)
        return lease

    def release(self, state: DeploymentState, lease: str, extra_tokens: int) -> None:
        """Give the call's slot back and settle its tokens, in the background (never awaited by a request)."""
        task = asyncio.get_running_loop().create_task(
            self._backend.release(_key(state), self.rules(state), lease, extra_tokens))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)


def _key(state: DeploymentState) -> str:
    return f"{state.model}|{state.label}"

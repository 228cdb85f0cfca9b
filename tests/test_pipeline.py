"""The pipeline's deadline and hang-up bounds, told of the hang-up by our server's `Hangup`
(the end-to-end cases, under both servers, are in test_routing.py)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from router.errors import ClientDisconnected, UpstreamTimeout
from router.outcome import Trace
from router.pipeline import _bounded
from router.server import HANGUP, Hangup


def request_with(hangup: Hangup) -> Request:
    async def receive() -> dict:
        raise AssertionError("with a Hangup, nothing waits in receive()")

    return Request({"type": "http", "method": "POST", "path": "/", "headers": [],
                    "extensions": {HANGUP: hangup}}, receive)


async def test_a_hang_up_during_the_upstream_part_is_a_499():
    hangup = Hangup()
    asyncio.get_running_loop().call_later(0.05, hangup.hung_up)
    with pytest.raises(ClientDisconnected):
        async with _bounded(request_with(hangup), 5.0, Trace("r"), True):
            await asyncio.sleep(5)
    assert hangup.callback is None  # nothing left to call into a finished request
    assert not asyncio.current_task().cancelling()


async def test_a_client_gone_before_the_upstream_part_is_a_499_at_once():
    hangup = Hangup()
    hangup.hung_up()
    with pytest.raises(ClientDisconnected):
        async with _bounded(request_with(hangup), 5.0, Trace("r"), True):
            raise AssertionError("no upstream call for a client that has left")


async def test_the_deadline_still_holds():
    with pytest.raises(UpstreamTimeout):
        async with _bounded(request_with(Hangup()), 0.05, Trace("r"), True):
            await asyncio.sleep(5)


async def test_a_hang_up_after_the_answer_touches_nothing():
    hangup = Hangup()
    async with _bounded(request_with(hangup), 5.0, Trace("r"), True):
        pass
    hangup.hung_up()  # the response is being written when the client leaves
    await asyncio.sleep(0)
    assert not asyncio.current_task().cancelling()

"""A fast fake OpenAI-compatible upstream for benchmarks: 384-dim vectors,
answers pre-serialised, so the bench measures the router and not the fake.

    python -m bench.fake_upstream PORT [DELAY_MS]

DELAY_MS: every answer waits this long first, as a real upstream's latency.
"""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
import orjson

DIMS = 384
MAX_ITEMS = 2048
_DELAY_S = float(os.environ.get("FAKE_UPSTREAM_DELAY_MS", "0")) / 1000
_rng = np.random.default_rng(0)
_VECTORS = _rng.standard_normal((64, DIMS)).astype(np.float32)
_ITEMS = [orjson.dumps({"object": "embedding", "index": i, "embedding": _VECTORS[i % 64]},
                       option=orjson.OPT_SERIALIZE_NUMPY) for i in range(MAX_ITEMS)]


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if _DELAY_S:
        await asyncio.sleep(_DELAY_S)
    payload = orjson.loads(body)
    inputs = payload["input"]
    n = 1 if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)) else len(inputs)
    content = (b'{"object":"list","data":[' + b",".join(_ITEMS[:n]) + b'],"model":"'
               + payload["model"].encode() + b'","usage":{"prompt_tokens":' + str(8 * n).encode()
               + b',"total_tokens":' + str(8 * n).encode() + b"}}")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})


if __name__ == "__main__":
    import uvicorn

    if len(sys.argv) > 2:
        os.environ["FAKE_UPSTREAM_DELAY_MS"] = sys.argv[2]
        _DELAY_S = float(sys.argv[2]) / 1000
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)

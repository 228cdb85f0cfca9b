"""Run an ASGI app on a real socket on 127.0.0.1, in a thread, for tests and benches."""

from __future__ import annotations

import threading
import time

import uvicorn


class ServerThread:
    def __init__(self, app, *, port: int = 0, **options) -> None:
        """`options`: more uvicorn settings (a router's: `router.server.uvicorn_options`)."""
        config = uvicorn.Config(app, **{"host": "127.0.0.1", "port": port, "log_level": "warning",
                                        "lifespan": "on", "access_log": False, **options})
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)

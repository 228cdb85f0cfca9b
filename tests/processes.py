"""Routers as real processes, started the way ops start them: `embeddings-router serve`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.redis_servers import free_port


class RouterProcess:
    def __init__(self, config: dict, directory: Path, *extra_args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = directory / f"router-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = directory / f"router-{self.port}.log"
        self._args = ["serve", "--config", str(self.config_path), "--port", str(self.port), *extra_args]
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> RouterProcess:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen([sys.executable, "-m", "router.cli", *self._args],
                                             stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"router did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

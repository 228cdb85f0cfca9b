"""Real Redis for tests: the machine's server on 127.0.0.1:6379 (each test
under its own key prefix), or a private redis-server a test may stop and
start again."""

from __future__ import annotations

import random
import socket
import subprocess
import time
import uuid

import redis

SHARED_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}:"


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class PrivateRedis:
    """A redis-server of the test's own, on a free port, that keeps nothing on disk."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


def _wait_for(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.1)


class _Servers:
    """redis-server processes of a test's own, in a temporary directory, killed at the end."""

    def __init__(self, directory) -> None:
        self.directory = directory
        self.processes: dict[int, subprocess.Popen] = {}

    def start(self, port: int, *args: str) -> None:
        workdir = self.directory / str(port)
        workdir.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--repl-diskless-sync-delay", "0", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(lambda: redis.Redis(port=port, socket_connect_timeout=0.2).ping(), f"redis on {port} starting")

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.kill()
        process.wait(timeout=10)

    def stop(self) -> None:
        for port in list(self.processes):
            self.kill(port)


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too, so under 55,536."""
    while True:
        port = random.randint(20000, 40000)
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class PrivateCluster(_Servers):
    """A Redis Cluster of 3 masters, each with a replica, on free ports; a replica takes over
    about a second (cluster-node-timeout) after its master dies."""

    def start_cluster(self) -> PrivateCluster:
        self.ports: list[int] = []
        while len(self.ports) < 6:
            if (port := free_cluster_port()) not in self.ports:
                self.ports.append(port)
        for port in self.ports:
            self.start(port, "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                       "--cluster-config-file", f"nodes-{port}.conf")
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas", "1", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        _wait_for(lambda: all(redis.Redis(port=p).cluster("info")["cluster_state"] == "ok" for p in self.ports),
                  "the cluster forming")
        # A replica that never synced would not take over: wait until each has its master's data.
        _wait_for(lambda: all(info["role"] == "master" or info.get("master_link_status") == "up"
                              for info in (redis.Redis(port=p).info("replication") for p in self.ports)),
                  "the replicas syncing")
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}/0"
        return self

    def master_of(self, key: str) -> int:
        client = redis.RedisCluster(host="127.0.0.1", port=self.ports[0])
        try:
            return int(client.get_node_from_key(key).port)
        finally:
            client.close()


class PrivateSentinel(_Servers):
    """A master, its replica and one Sentinel watching them (quorum 1); the Sentinel promotes
    the replica about a second after the master dies."""

    SERVICE = "routermaster"

    def start_sentinel(self) -> PrivateSentinel:
        self.master, self.replica, self.sentinel = free_port(), free_port(), free_port()
        self.start(self.master)
        self.start(self.replica, "--replicaof", "127.0.0.1", str(self.master))
        conf = self.directory / "sentinel.conf"
        conf.write_text(f"port {self.sentinel}\nbind 127.0.0.1\n"
                        f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master} 1\n"
                        f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                        f"sentinel failover-timeout {self.SERVICE} 5000\n")
        self.processes[self.sentinel] = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(lambda: redis.Redis(port=self.sentinel).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE), "the sentinel starting")
        _wait_for(lambda: redis.Redis(port=self.replica).info("replication")["master_link_status"] == "up",
                  "the replica syncing")
        self.url = f"redis+sentinel://127.0.0.1:{self.sentinel}/{self.SERVICE}/0"
        return self

    def current_master(self) -> int:
        _, port = redis.Redis(port=self.sentinel).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE)
        return int(port)

"""Hot reload: by file change, SIGHUP and POST /admin/reload; bad files refused; no request
ever sees two configs."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from router.app import create_app
from router.config import load
from tests.conftest import KEY, Router, config_dict, sha
from tests.fakes.openai_upstream import vector_for
from tests.fakes.server import ServerThread
from tests.processes import RouterProcess

ADMIN_KEY = "sk-admin-secret-42"


EXTRA_MODELS = {"e5-small", "watched", "sighup-model", *(f"model-v{n}" for n in range(21))}


def base_config(upstream_url: str) -> dict:
    config = config_dict(upstream_url)
    config["admin_keys"] = [{"name": "ops", "sha256": hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}]
    return config


class ReloadableRouter:
    """A router serving a config file the test rewrites."""

    def __init__(self, path: Path, config: dict, watch: bool) -> None:
        self.path = path
        self.write(config)
        self.logs = io.BytesIO()
        app = create_app(load(path), config_path=str(path), log_stream=self.logs, watch=watch)
        self._server = ServerThread(app).__enter__()
        self.router = Router(self._server.url, self.logs)

    def write(self, config: dict | str | bytes) -> None:
        text = config if isinstance(config, str | bytes) else yaml.safe_dump(config)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(text if isinstance(text, bytes) else text.encode())
        tmp.replace(self.path)  # atomically, as editors and config management do

    def admin(self, method: str, path: str, key: str | None = ADMIN_KEY) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.request(method, f"{self.router.url}{path}", headers=headers, timeout=30)

    def close(self) -> None:
        self._server.__exit__()


@pytest.fixture
def reloadable(upstream, upstream_url, tmp_path, log_archive):
    routers: list[ReloadableRouter] = []
    upstream.models = {*upstream.models, *EXTRA_MODELS}

    def make(watch: bool = False, config: dict | None = None) -> ReloadableRouter:
        routers.append(ReloadableRouter(tmp_path / "router.yaml", config or base_config(upstream_url), watch))
        log_archive.add(routers[-1].logs)
        return routers[-1]

    yield make
    for r in routers:
        r.close()


def embed(router: Router, model: str = "text-embedding-3-small", key: str = KEY) -> httpx.Response:
    with router.client(key) as c:
        return c.post("/v1/embeddings", json={"model": model, "input": "hello"})


def test_admin_reload_applies_a_new_model(reloadable, upstream_url):
    r = reloadable()
    before = embed(r.router).headers["x-router-config-version"]
    config = base_config(upstream_url)
    config["models"]["e5-small"] = {"deployments": [{"provider": "fake", "model": "e5-small"}]}
    r.write(config)
    answer = r.admin("POST", "/admin/reload")
    assert answer.status_code == 200 and answer.json()["result"] == "applied"
    new = embed(r.router, "e5-small")
    assert new.status_code == 200 and new.headers["x-router-config-version"] not in (before, "")
    assert new.headers["x-router-config-version"] == answer.json()["version"]
    assert r.admin("POST", "/admin/reload").json()["result"] == "unchanged"


@pytest.mark.parametrize(("text", "error"), [
    ("providers: [unclosed\n", "YAML syntax error: line 2"),
    ("MUTATE_PROVIDER", "models.text-embedding-3-small.deployments[0].provider: unknown provider 'fakee'"),
    ("MISSING_ENV", "environment variable NOT_SET_ANYWHERE_42 is not set"),
])
def test_a_bad_file_is_refused_and_the_old_config_keeps_serving(reloadable, upstream_url, text, error):
    r = reloadable()
    version = embed(r.router).headers["x-router-config-version"]
    config = base_config(upstream_url)
    if text == "MUTATE_PROVIDER":
        config["models"]["text-embedding-3-small"]["deployments"][0]["provider"] = "fakee"
        text = yaml.safe_dump(config)
    elif text == "MISSING_ENV":
        config["providers"]["fake"]["api_key"] = "${NOT_SET_ANYWHERE_42}"
        text = yaml.safe_dump(config)
    r.write(text)
    refused = r.admin("POST", "/admin/reload")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "config_rejected" and error in refused.json()["error"]["message"]
    still = embed(r.router)
    assert still.status_code == 200 and still.headers["x-router-config-version"] == version
    status = r.admin("GET", "/admin/status").json()
    assert status["config"]["version"] == version
    assert status["last_reload"]["result"] == "rejected" and error in status["last_reload"]["error"]
    assert status["last_reload"]["version"] != version
    assert error.encode() in r.logs.getvalue() and b"config rejected" in r.logs.getvalue()
    metrics = httpx.get(f"{r.router.url}/metrics").text
    assert 'embeddings_router_config_reloads_total{result="rejected"} 1.0' in metrics


def test_sections_the_process_cannot_swap_are_named(reloadable, upstream_url):
    r = reloadable()
    config = base_config(upstream_url)
    config["cache"] = {"backend": "none"}
    config["server"]["port"] = 9999
    config["keys"] = config["keys"][:1]  # applied at once: the second key is revoked
    r.write(config)
    answer = r.admin("POST", "/admin/reload").json()
    assert answer["result"] == "applied" and answer["restart_required"] == ["server.host/port", "cache"]
    from tests.conftest import LIMITED_KEY
    assert embed(r.router, "bge-base-en-v1.5", key=LIMITED_KEY).status_code == 401
    assert r.admin("GET", "/admin/status").json()["cache"]["backend"] == "memory"  # still the running one


def test_admin_endpoints_need_an_admin_key(reloadable):
    r = reloadable()
    assert r.admin("GET", "/admin/status", key=None).status_code == 401
    assert r.admin("GET", "/admin/status", key="sk-nobody").status_code == 401
    user = r.admin("POST", "/admin/reload", key=KEY)
    assert user.status_code == 403 and user.json()["error"]["code"] == "admin_key_required"
    assert embed(r.router, key=ADMIN_KEY).status_code == 401  # an admin key is not an API key
    status = r.admin("GET", "/admin/status")
    assert status.status_code == 200
    body = status.json()
    deployment = body["models"]["bge-base-en-v1.5"]["deployments"][0]
    assert {k: deployment[k] for k in ("provider", "kind", "model", "space", "weight")} == {
        "provider": "fake", "kind": "openai", "model": "BAAI/bge-base-en-v1.5", "space": "bge-base-en-v1.5",
        "weight": 1.0}
    assert deployment["health"]["state"] == "healthy" and deployment["health"]["in_flight"] == 0
    assert body["keys"]["count"] == 2 and body["keys"]["admin"] == 1 and body["cache"]["backend"] == "memory"
    assert set(body["keys"]["limits"]) == {"test", "limited"}  # by name, as logs and metrics show them
    assert KEY not in status.text and ADMIN_KEY not in status.text and "sk-upstream" not in status.text
    assert sha(KEY) not in status.text and sha(ADMIN_KEY) not in status.text


def test_the_last_applied_reload_shows_its_diff_with_secrets_masked(reloadable, upstream_url):
    r = reloadable()
    assert r.admin("GET", "/admin/status").json()["last_applied_reload"] is None
    config = base_config(upstream_url)
    config["providers"]["fake"]["api_key"] = "sk-rotated-upstream-secret-99"
    config["models"]["diffed"] = {"deployments": [{"provider": "fake", "model": "diffed"}]}
    r.write(config)
    assert r.admin("POST", "/admin/reload").json()["result"] == "applied"
    r.write("models: [\n")
    assert r.admin("POST", "/admin/reload").status_code == 400
    status = r.admin("GET", "/admin/status").json()
    assert status["last_reload"]["result"] == "rejected"  # the refusal, and still the diff of what was applied
    diff = status["last_applied_reload"]["diff"]
    assert status["last_applied_reload"]["result"] == "applied"
    assert "+  diffed:" in diff and "--- running" in diff
    assert "api_key" in diff and "sk-rotated" not in diff and "sk-upstream" not in diff


def test_a_changed_file_is_picked_up_by_the_watcher(reloadable, upstream_url):
    r = reloadable(watch=True)
    time.sleep(0.3)  # let the watcher start
    config = base_config(upstream_url)
    config["models"]["watched"] = {"deployments": [{"provider": "fake", "model": "watched"}]}
    r.write(config)
    deadline = time.monotonic() + 10
    while embed(r.router, "watched").status_code != 200:
        assert time.monotonic() < deadline, "the change was not picked up"
        time.sleep(0.1)
    assert b'"trigger":"file"' in r.logs.getvalue()
    r.write("models: [\n")
    time.sleep(1.0)
    r.path.touch()  # the same bad file seen again: refused, but logged once
    time.sleep(1.0)
    assert r.logs.getvalue().count(b"config rejected") == 1
    assert embed(r.router, "watched").status_code == 200


def test_sighup_reloads_a_serving_process(upstream, upstream_url, tmp_path, log_archive):
    upstream.models = {*upstream.models, *EXTRA_MODELS}
    config = base_config(upstream_url)
    with RouterProcess(config, tmp_path, "--no-watch") as proc:
        log_archive.add(proc.log_path)
        router = Router(proc.url, io.BytesIO())
        assert embed(router, "sighup-model").status_code == 404
        config["models"]["sighup-model"] = {"deployments": [{"provider": "fake", "model": "sighup-model"}]}
        proc.config_path.write_text(yaml.safe_dump(config))
        time.sleep(1.0)
        assert embed(router, "sighup-model").status_code == 404  # --no-watch: the file alone changes nothing
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while embed(router, "sighup-model").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert '"trigger":"signal"' in proc.log_path.read_text()


def test_reloads_under_load_never_fail_or_mix_configs(reloadable, upstream_url):
    """Clients embed continuously while the config is rewritten 20 times (keys added and revoked,
    the route pointed at a different upstream model each time). No request fails, and every
    vector of a response comes from the upstream model of the version that response names."""
    r = reloadable()
    upstream_model_of: dict[str, str] = {}
    configs = []
    for n in range(21):
        config = copy.deepcopy(base_config(upstream_url))
        config["providers"]["fake"]["max_batch"] = 2  # 6 inputs: 3 chunks, concurrently
        config["models"]["text-embedding-3-small"]["deployments"][0]["model"] = f"model-v{n}"
        config["keys"].append({"name": f"temp-{n}", "sha256": hashlib.sha256(f"sk-temp-{n}".encode()).hexdigest()})
        configs.append(config)
    r.write(configs[0])
    r.admin("POST", "/admin/reload")
    stop, failures, seen = threading.Event(), [], []
    inputs = [f"text {i}" for i in range(6)]

    def client() -> None:
        with r.router.client() as c:
            while not stop.is_set():
                answer = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": inputs},
                                headers={"cache-control": "no-cache"})
                if answer.status_code != 200:
                    failures.append(answer.text)
                    continue
                got = np.float32([d["embedding"] for d in answer.json()["data"]])
                seen.append((answer.headers["x-router-config-version"], got))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for config in configs[1:]:
        r.write(config)
        outcome = r.admin("POST", "/admin/reload").json()
        upstream_model_of[outcome["version"]] = config["models"]["text-embedding-3-small"]["deployments"][0]["model"]
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    upstream_model_of[load_version(configs[0])] = "model-v0"
    assert not failures
    versions = {version for version, _ in seen}
    assert len(seen) > 50 and len(versions) >= 5
    for version, got in seen:
        expected = np.stack([vector_for(upstream_model_of[version], x) for x in inputs])
        np.testing.assert_array_equal(got, expected)


def load_version(config: dict) -> str:
    from router.config import version_of
    return version_of(yaml.safe_dump(config))


def ops_order(config: dict) -> str:
    """The config as ops write it: server, providers, models, keys, admin keys."""
    order = ["server", "providers", "models", "keys", "admin_keys"]
    return yaml.safe_dump({k: config[k] for k in order if k in config}, sort_keys=False)


@pytest.mark.parametrize("trigger", ["file", "admin"])
def test_no_save_takes_the_router_down(reloadable, upstream_url, trigger):
    """Under steady load: an empty file, whitespace, a non-UTF-8 byte, the config cut at each line
    boundary, a file without keys, one without admin keys: not one failed request; then a good
    change is live within 3 s."""
    r = reloadable(watch=trigger == "file")
    good = ops_order(base_config(upstream_url))
    lines = good.splitlines(keepends=True)
    keyless = base_config(upstream_url)
    del keyless["keys"]
    no_admin = base_config(upstream_url)
    del no_admin["admin_keys"]
    saves: list[str | bytes] = ["", "  \n\n", good.encode().replace(b"keys:", b"keys:\xff", 1),
                                *("".join(lines[:n]) for n in range(len(lines))),
                                ops_order(keyless), ops_order(no_admin)]
    failures, done = [], threading.Event()

    def load() -> None:
        with r.router.client() as c:
            while not done.is_set():
                response = c.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "steady"})
                if response.status_code != 200:
                    failures.append(response.text)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        for text in saves:
            r.write(text)
            if trigger == "admin":
                answer = r.admin("POST", "/admin/reload")
                assert answer.status_code in (200, 400), answer.text
                if answer.status_code == 400:
                    assert answer.json()["error"]["code"] == "config_rejected"
            else:
                time.sleep(0.6)  # the watcher's debounce and settle
        changed = base_config(upstream_url)
        changed["models"]["watched"] = {"deployments": [{"provider": "fake", "model": "watched"}]}
        r.write(ops_order(changed))
        saved = time.monotonic()
        if trigger == "admin":
            assert r.admin("POST", "/admin/reload").json()["result"] == "applied"
        while embed(r.router, "watched").status_code != 200:
            assert time.monotonic() - saved < 3, "the good change was not live within 3 s"
            time.sleep(0.05)
    finally:
        done.set()
        worker.join()
    assert failures == []
    status = r.admin("GET", "/admin/status").json()
    assert status["last_reload"]["result"] == "applied"
    metrics = httpx.get(f"{r.router.url}/metrics").text
    rejected = [line for line in metrics.splitlines() if line.startswith(
        'embeddings_router_config_reloads_total{result="rejected"}')]
    assert rejected and float(rejected[0].split()[-1]) >= 5
    assert b"unhandled error" not in r.logs.getvalue() and b"Traceback" not in r.logs.getvalue()

"""The files ops deploy with: Dockerfile, docker-compose.yml, the load balancer, their config."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from router.config import load

ROOT = Path(__file__).resolve().parent.parent
ENV = {"ROUTER_KEY_SHA256": "a" * 64}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_replicas_share_one_image_and_one_redis_config():
    services = compose()["services"]
    routers = sorted(name for name in services if name.startswith("router-"))
    assert len(routers) >= 2 and {"redis", "lb"} <= set(services)
    assert all(services[r] == services[routers[0]] for r in routers)
    assert services[routers[0]]["build"] == "."
    cmd = re.search(r'^CMD (.*)$', (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert "/etc/embeddings-router/compose.yaml" in cmd
    config = load(ROOT / "config" / "compose.yaml", env={**ENV, "REDIS_URL": "redis://redis:6379/0"})
    assert config.limits.backend == "redis" and config.cache.backend == "redis"


def test_the_balancer_sends_to_every_replica():
    services = compose()["services"]
    nginx = (ROOT / "config" / "nginx.conf").read_text()
    balanced = set(re.findall(r"server (router-\d+):8080", nginx))
    assert balanced == {name for name in services if name.startswith("router-")}


def test_the_image_runs_as_a_user_and_checks_health():
    dockerfile = (ROOT / "Dockerfile").read_text()
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "USER router" in final and "HEALTHCHECK" in final and "torch" not in final.split("COPY --from")[0]


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose is not installed")
def test_docker_compose_accepts_the_file():
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, env={**os.environ, **ENV}, timeout=60)
    assert result.returncode == 0, result.stderr
    unset = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                           capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if k != "ROUTER_KEY_SHA256"})
    assert unset.returncode != 0 and "ROUTER_KEY_SHA256" in unset.stderr

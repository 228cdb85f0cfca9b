"""The command line, run as ops run it: a real subprocess."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

from router.config import DEFAULT_CONFIG


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "router.cli", *args], capture_output=True, text=True, timeout=60)


def test_check_config_ok_and_refused(tmp_path):
    ok = run("check-config", str(DEFAULT_CONFIG))
    assert ok.returncode == 0 and "ok" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_CONFIG.read_text().replace("provider: local", "provider: lokal"))
    refused = run("check-config", str(bad))
    assert refused.returncode == 1
    assert "models.all-MiniLM-L6-v2.deployments[0].provider: unknown provider 'lokal'" in refused.stderr
    missing = run("check-config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "cannot read config" in missing.stderr


def test_check_config_refuses_a_model_mixing_spaces_unless_told_loudly(tmp_path):
    import yaml

    from tests.conftest import config_dict
    config = config_dict("http://127.0.0.1:9")
    config["models"]["bge-base-en-v1.5"]["deployments"].append(
        {"provider": "fake", "model": "text-embedding-3-small", "space": "openai-3-small"})
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(config))
    refused = run("check-config", str(path))
    assert refused.returncode == 1 and "deployments[1].space: 'openai-3-small' is not the model's" in refused.stderr
    config["models"]["bge-base-en-v1.5"]["unsafe_mixed_spaces"] = True
    path.write_text(yaml.safe_dump(config))
    allowed = run("check-config", str(path))
    assert allowed.returncode == 0 and "warning: models.bge-base-en-v1.5: unsafe_mixed_spaces" in allowed.stderr


def test_config_reference_prints_the_generated_table():
    from router.config_reference import markdown
    out = run("config-reference")
    assert out.returncode == 0 and out.stdout == markdown() and "| `routing.max_attempts` | int | `4` |" in out.stdout


def test_keys_new_prints_a_key_and_its_hash():
    out = run("keys", "new", "search-team").stdout
    key = re.search(r"#   (sk-\S+)", out).group(1)
    digest = re.search(r"sha256: ([0-9a-f]{64})", out).group(1)
    assert hashlib.sha256(key.encode()).hexdigest() == digest
    assert "name: search-team" in out
    assert run("keys", "new", "x").stdout != out


def test_serve_refuses_public_address_with_the_dev_key():
    refused = run("serve", "--config", str(DEFAULT_CONFIG), "--host", "0.0.0.0", "--port", "1")
    assert refused.returncode == 1 and "development key" in refused.stderr


def test_serve_refuses_workers_with_per_process_limits():
    refused = run("serve", "--config", str(DEFAULT_CONFIG), "--workers", "2", "--port", "1")
    assert refused.returncode == 1
    assert "every key would get 2 times its limits" in refused.stderr and "backend: redis" in refused.stderr


def test_check_config_and_serve_refuse_an_empty_or_keyless_file(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("\n")
    refused = run("check-config", str(empty))
    assert refused.returncode == 1 and "the config is empty" in refused.stderr
    served = run("serve", "--config", str(empty), "--port", "1")
    assert served.returncode == 1 and "the config is empty" in served.stderr
    keyless = tmp_path / "keyless.yaml"
    keyless.write_text(DEFAULT_CONFIG.read_text().split("\nkeys:")[0])
    refused = run("check-config", str(keyless))
    assert refused.returncode == 1 and "keys: at least one key is required" in refused.stderr

"""Config validation: every refusal names the exact path."""

from __future__ import annotations

import copy

import pytest
import yaml

from router.config import DEFAULT_CONFIG, ConfigError, load, parse
from tests.conftest import config_dict

BASE = config_dict("http://127.0.0.1:9")


def refused(mutate, env=None) -> str:
    raw = copy.deepcopy(BASE)
    mutate(raw)
    with pytest.raises(ConfigError) as exc:
        parse(yaml.safe_dump(raw), env=env or {})
    return str(exc.value)


def test_shipped_and_example_configs_load():
    config = load(DEFAULT_CONFIG)
    assert "all-MiniLM-L6-v2" in config.models
    example = load(DEFAULT_CONFIG.with_name("example.yaml"),
                   env={"TOGETHER_API_KEY": "t", "OPENAI_API_KEY": "o"})
    assert {"together", "openai", "local"} <= set(example.providers)
    compose = load(DEFAULT_CONFIG.with_name("compose.yaml"), env={"ROUTER_KEY_SHA256": "a" * 64,
                                                                   "ROUTER_KEY_RPM": "60"})
    assert compose.limits.backend == compose.cache.backend == "redis" and compose.uses_redis
    assert compose.keys[0].limits.rpm == 60 and compose.keys[0].limits.tpm == 1_000_000
    assert compose.redis.url == "redis://redis:6379/0"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c["models"]["bge-base-en-v1.5"]["deployments"].append({"provider": "togther", "model": "m"}),
     "models.bge-base-en-v1.5.deployments[1].provider: unknown provider 'togther'"),
    (lambda c: c["providers"]["fake"].update(kind="openia"), "providers.fake.kind: must be one of"),
    (lambda c: c["providers"]["fake"].update(base_url="ftp://x"), "providers.fake.base_url: must be an http"),
    (lambda c: c["providers"]["fake"].update(timeout_s="soon"), "providers.fake.timeout_s: expected a number"),
    (lambda c: c["providers"]["fake"].update(max_batch=0), "providers.fake.max_batch: must be greater than 0"),
    (lambda c: c["providers"]["fake"].update(typo_field=1), "providers.fake.typo_field: unknown field"),
    (lambda c: c["models"]["bge-base-en-v1.5"].update(deployments=[]), "deployments: at least one"),
    (lambda c: c["models"]["bge-base-en-v1.5"].update(strategy="random"), "strategy: must be one of"),
    (lambda c: c["models"]["bge-base-en-v1.5"].update(aliases=["text-embedding-3-small"]),
     "name 'text-embedding-3-small' is already used"),
    (lambda c: c["keys"][0].update(sha256="not-a-hash"), "keys[0].sha256: must be 64 lowercase hex"),
    (lambda c: c["keys"].append(dict(c["keys"][0])), "keys[2].name: duplicate key name 'test'"),
    (lambda c: c["keys"][0].update(limits={"rpm": -1}), "keys[0].limits.rpm: must be greater than 0"),
    (lambda c: c["server"].update(port=70000), "server.port: must be 0-65535"),
    (lambda c: c.update(cache={"backend": "disk"}), "cache.backend: must be one of"),
    (lambda c: c.update(limits={"backend": "redis", "on_redis_error": "ignore"}),
     "limits.on_redis_error: must be one of allow, deny; got 'ignore'"),
    (lambda c: c.update(redis={"url": "http://x"}), "redis.url: must be a redis://"),
    (lambda c: c["keys"][0].update(model_limits={"bge-*": {"rpm": 0}}),
     "keys[0].model_limits.bge-*.rpm: must be greater than 0"),
    (lambda c: c["keys"][0].update(model_limits={"bge-*": {"max_inputs": 3}}),
     "keys[0].model_limits.bge-*.max_inputs: unknown field"),
    (lambda c: c["keys"][0].update(limits={"tokens_per_day": "lots"}),
     "keys[0].limits.tokens_per_day: expected an integer"),
    (lambda c: c.update(extra_section={}), "extra_section: unknown field"),
    (lambda c: c["providers"].update(local={"kind": "local", "models": {"m": {"path": "/no/such/dir"}}}),
     "providers.local.models.m.path: '/no/such/dir' is not a directory"),
    (lambda c: c["providers"].update(local={"kind": "local", "models": {"m": {"path": "package:no_such_pkg"}}}),
     "providers.local.models.m.path: package 'no_such_pkg' is not installed"),
    (lambda c: c["models"]["bge-base-en-v1.5"]["deployments"].append(
        {"provider": "fake", "model": "BAAI/bge-large-en-v1.5", "space": "BAAI/bge-large-en-v1.5"}),
     "models.bge-base-en-v1.5.deployments[1].space: 'BAAI/bge-large-en-v1.5' is not the model's embedding "
     "space 'bge-base-en-v1.5'"),
    (lambda c: c["models"]["bge-base-en-v1.5"]["deployments"].append(
        {"provider": "fake", "model": "BAAI/bge-base-en-v1.5"}),
     "deployments[1].model: fake/BAAI/bge-base-en-v1.5 is already a deployment of this model"),
    (lambda c: c["models"]["bge-base-en-v1.5"]["deployments"][0].update(max_concurrency=0),
     "deployments[0].max_concurrency: must be greater than 0"),
    (lambda c: c["models"]["bge-base-en-v1.5"].update(hedge_after_ms=0.5), "hedge_after_ms: expected an integer"),
    (lambda c: c.update(routing={"cooldown": {"error_rate": 1.5}}),
     "routing.cooldown.error_rate: must be over 0 and at most 1"),
    (lambda c: c.update(routing={"retries": 3}), "routing.retries: unknown field"),
])
def test_refusals_name_the_path(mutate, message):
    assert message in refused(mutate)


def test_mixing_spaces_takes_the_loudly_named_override():
    raw = copy.deepcopy(BASE)
    model = raw["models"]["bge-base-en-v1.5"]
    model["deployments"].append({"provider": "fake", "model": "BAAI/bge-large-en-v1.5",
                                 "space": "BAAI/bge-large-en-v1.5"})
    model["unsafe_mixed_spaces"] = True
    config = parse(yaml.safe_dump(raw))
    assert config.models["bge-base-en-v1.5"].unsafe_mixed_spaces
    assert [d.space for d in config.models["bge-base-en-v1.5"].deployments] == [
        "bge-base-en-v1.5", "BAAI/bge-large-en-v1.5"]


def test_routing_defaults_and_overrides():
    raw = copy.deepcopy(BASE)
    raw["routing"] = {"max_attempts": 2, "cooldown": {"failures": 9}}
    raw["models"]["bge-base-en-v1.5"].update(strategy="least-busy", max_attempts=5, hedge_after_ms=250)
    config = parse(yaml.safe_dump(raw))
    assert config.routing.max_attempts == 2 and config.routing.backoff_s == 0.1
    assert config.routing.cooldown.failures == 9 and config.routing.cooldown.cooldown_s == 30
    model = config.models["bge-base-en-v1.5"]
    assert model.strategy == "least-busy" and model.max_attempts == 5 and model.hedge_after_s == 0.25


def test_env_interpolation_and_missing_variable():
    def use_env(c):
        c["providers"]["fake"]["api_key"] = "${UPSTREAM_KEY}"
    assert "providers.fake.api_key: environment variable UPSTREAM_KEY is not set" in refused(use_env)
    raw = copy.deepcopy(BASE)
    raw["providers"]["fake"]["api_key"] = "${UPSTREAM_KEY}"
    raw["providers"]["fake"]["base_url"] = "${BASE:-http://127.0.0.1:1}/v1"
    config = parse(yaml.safe_dump(raw), env={"UPSTREAM_KEY": "secret-value"})
    assert config.providers["fake"].settings.api_key == "secret-value"
    assert config.providers["fake"].settings.base_url == "http://127.0.0.1:1/v1"
    assert "secret-value" not in repr(config)


def test_a_whole_value_placeholder_is_typed_and_a_partial_one_stays_text():
    raw = copy.deepcopy(BASE)
    raw["keys"][0]["limits"] = {"rpm": "${RPM:-600}"}
    raw["keys"][0]["name"] = "team-${RPM:-600}"
    config = parse(yaml.safe_dump(raw), env={})
    assert config.keys[0].limits.rpm == 600 and config.keys[0].name == "team-600"
    raw["keys"][0]["limits"] = {"rpm": "${RPM}"}
    with pytest.raises(ConfigError, match=r"keys\[0\].limits.rpm: expected an integer, got a string"):
        parse(yaml.safe_dump(raw), env={"RPM": "[1, 2]"})


def test_yaml_syntax_error_has_a_position():
    with pytest.raises(ConfigError, match=r"YAML syntax error: line 3, column 1"):
        parse("providers:\n  x: [unclosed\n")


def test_version_changes_with_content():
    a = parse(yaml.safe_dump(BASE))
    raw = copy.deepcopy(BASE)
    raw["server"]["port"] = 9999
    assert parse(yaml.safe_dump(raw)).version != a.version


@pytest.mark.parametrize(("text", "message"), [
    ("", "the config is empty"),
    ("  \n\t\n", "the config is empty"),
    ("# only a comment\n", "models: at least one model is required"),
    ("server: {port: 8080}\n", "models: at least one model is required"),
])
def test_a_config_that_could_serve_nothing_is_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse(text)


def test_a_config_without_keys_is_refused():
    config = config_dict("http://127.0.0.1:9")
    config["keys"] = []
    with pytest.raises(ConfigError, match="keys: at least one key is required"):
        parse(yaml.safe_dump(config))
    del config["keys"]
    with pytest.raises(ConfigError, match="keys: at least one key is required"):
        parse(yaml.safe_dump(config))


def test_a_non_utf8_file_is_a_config_error_with_its_position(tmp_path):
    path = tmp_path / "router.yaml"
    path.write_bytes(yaml.safe_dump(config_dict("http://127.0.0.1:9")).encode().replace(b"keys:", b"keys:\xff", 1))
    with pytest.raises(ConfigError, match=r"not UTF-8: byte 0xff at line \d+"):
        load(path)

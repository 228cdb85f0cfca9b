"""GET /openapi.json is true: every route the app serves is in it with its methods, and a
schema-driven fuzz (schemathesis) finds every answer conforming: no 5xx, every non-200 body
ErrorData, nothing slow. `make fuzz` runs it (and tests/test_fuzz.py) at 100,000 cases."""

from __future__ import annotations

import io
import os
import time

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance
from starlette.routing import Route

from router import openapi
from router.app import create_app
from router.config import parse
from tests.conftest import KEY, config_dict

SCHEMA = schemathesis.openapi.from_dict(openapi.document())
OPERATIONS = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in SCHEMA.get_all_operations())}
# Where there is nothing to get wrong (no body, no parameters) only valid requests exist.
CASES = [(name, mode) for name, op in sorted(OPERATIONS.items())
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode == GenerationMode.POSITIVE or "requestBody" in op.definition.raw or op.path_parameters]
# About a minute in `make test`; FUZZ_EXAMPLES (make fuzz) shares its total out over every operation and mode.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0")) // len(CASES) or 25


def test_every_route_is_documented_with_its_methods(router):
    assert httpx.get(f"{router.url}/openapi.json").json() == openapi.document()
    app = create_app(parse(yaml.safe_dump(config_dict("http://127.0.0.1:9"))), log_stream=io.BytesIO())
    served = {r.path.replace("{model:path}", "{model}"): {m.lower() for m in r.methods or ()} - {"head"}
              for r in app.routes if isinstance(r, Route)}
    assert served == {path: set(item) for path, item in openapi.document()["paths"].items()}


@pytest.fixture
def served(make_router, upstream, upstream_url):
    """A router whose dialect routes all work: TEI's need `server.default_model`."""
    config = config_dict(upstream_url)
    config["server"]["default_model"] = "text-embedding-3-small"
    return make_router(config)


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_every_operation_keeps_its_contract(served, operation, mode):
    router = served
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=OPERATIONS[operation].as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        started = time.monotonic()
        response = case.call(base_url=router.url, headers={"authorization": f"Bearer {KEY}"}, timeout=15)
        assert time.monotonic() - started < 10
        assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
        if response.status_code != 200:
            assert set(response.json()) <= {"error", "detail"}, response.text
        if mode == GenerationMode.POSITIVE:
            # (ignored_auth re-sends with the key these calls add, so it would blame a valid key;
            # tests/test_api.py covers missing and wrong keys on every route. On dialect routes a valid
            # request reaches the fake upstream, which refuses `dimensions` over its width with a 400.)
            dialect_route = case.operation.path in ("/", "/embed", "/api/embed", "/api/embeddings", "/v2/embed",
                                                    "/v1/embed", "/api/v3/inference/embeddings")
            excluded = [ignored_auth, *([positive_data_acceptance] if dialect_route else [])]
            case.validate_response(response, excluded_checks=excluded)

    check()
    assert b"unhandled error" not in router.logs.getvalue()

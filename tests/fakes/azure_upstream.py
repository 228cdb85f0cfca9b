"""A fake Azure OpenAI resource: OpenAI's body under
`/openai/deployments/{deployment}/embeddings?api-version=...`, keyed by `api-key`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from tests.fakes.api import Refused
from tests.fakes.openai_upstream import FakeUpstream

API_VERSIONS = ("2024-02-01", "2024-06-01", "2024-10-21")


class FakeAzure(FakeUpstream):
    path = "/openai/deployments/{deployment}/embeddings"

    def authorized(self, request: Request) -> bool:
        return request.headers.get("api-key") == self.api_key

    def model_of(self, request: Request | None, payload: Any) -> str:
        if request is None:  # a recorded request, read back by a test
            return "recorded"
        if request.query_params.get("api-version") not in API_VERSIONS:
            raise Refused(self.error(404, "Resource not found"))
        return request.path_params["deployment"]

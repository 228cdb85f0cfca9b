"""`kind: azure-openai`: the deployment in the path, api-version, and the api-key header."""

from __future__ import annotations

from tests.fakes.api import API_KEY
from tests.fakes.azure_upstream import FakeAzure
from tests.providers.conftest import embed
from tests.test_api import assert_error


def test_deployment_path_version_and_key(serve, single):
    fake = FakeAzure(models=("emb-3-small prod",))
    router = single({"kind": "azure-openai", "base_url": serve(fake), "api_version": "2024-06-01"},
                    "emb-3-small prod")
    assert embed(router, input="a").status_code == 200
    call = fake.requests[-1]
    assert call["path"] == "/openai/deployments/emb-3-small prod/embeddings"
    assert call["query"] == {"api-version": "2024-06-01"}
    assert call["headers"]["api-key"] == API_KEY and "authorization" not in call["headers"]
    assert "model" not in call["body"]


def test_an_unknown_api_version_is_azures_404(serve, single):
    fake = FakeAzure()
    router = single({"kind": "azure-openai", "base_url": serve(fake), "api_version": "1999-01-01"},
                    "text-embedding-3-small")
    assert_error(embed(router, input="a"), 404, param="model", code="model_not_found")

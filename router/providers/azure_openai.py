"""`kind: azure-openai` — OpenAI's models on Azure.

    POST {base_url}/openai/deployments/{deployment}/embeddings?api-version=...    api-key: KEY
    body and answer as OpenAI's; throttling says when to come back in `retry-after-ms`.

A deployment's `model` is the Azure deployment's name. Azure serves OpenAI's
own models, which read token ids as OpenAI's clients encode them, so token
ids are forwarded by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from router.providers.base import DEFAULT_OPTIONS, Inputs, Options, ProviderKind
from router.providers.http import read_settings
from router.providers.openai import OpenAIProvider, OpenAISettings, finish
from router.reader import Section, doc


@dataclass(frozen=True)
class AzureOpenAISettings(OpenAISettings):
    base_url: str = field(metadata=doc("the resource's endpoint, e.g. `https://NAME.openai.azure.com`",
                                       kind="URL"))
    api_key: str | None = field(default=None, repr=False, metadata=doc(
        "sent as `api-key`; write `${ENV_VAR}`, never the key", default="none"))
    accepts_tokens: bool = field(default=True, metadata=doc("forward token-id arrays (OpenAI's models read "
                                                            "them as OpenAI's clients encode them)"))
    api_version: str = field(default="2024-10-21", metadata=doc("the `api-version` query parameter"))


def parse_settings(s: Section) -> AzureOpenAISettings:
    return finish(read_settings(s, AzureOpenAISettings))


class AzureOpenAIProvider(OpenAIProvider):
    settings: AzureOpenAISettings

    def headers(self) -> dict[str, str]:
        key = {"api-key": self.settings.api_key} if self.settings.api_key else {}
        return {**key, **self.settings.headers}

    def request(self, inputs: Inputs, model: str, dimensions: int | None,
                options: Options = DEFAULT_OPTIONS) -> tuple[str, dict]:
        _, body = super().request(inputs, model, dimensions, options)
        del body["model"]  # the deployment in the URL names it
        return (f"{self.settings.base_url}/openai/deployments/{quote(model, safe='')}/embeddings"
                f"?api-version={self.settings.api_version}"), body


KIND = ProviderKind(parse_settings=parse_settings, create=AzureOpenAIProvider,
                    reference=(("", AzureOpenAISettings),))

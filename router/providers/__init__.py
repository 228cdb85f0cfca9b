"""Provider registry: wire formats keyed by the config's `kind:`."""

from router.providers import azure_openai, cohere, gemini, local, nugen, ollama, openai, tei
from router.providers.base import Capabilities, EmbedResult, Provider, ProviderKind

KINDS: dict[str, ProviderKind] = {
    "openai": openai.KIND,
    "azure-openai": azure_openai.KIND,
    "cohere": cohere.KIND,
    "gemini": gemini.KIND,
    "nugen": nugen.KIND,
    "ollama": ollama.KIND,
    "tei": tei.KIND,
    "local": local.KIND,
}

__all__ = ["KINDS", "Capabilities", "EmbedResult", "Provider", "ProviderKind"]

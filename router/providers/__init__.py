"""Provider registry: wire formats keyed by the config's `kind:`."""

from router.providers import local, openai, tei
from router.providers.base import Capabilities, EmbedResult, Provider, ProviderKind

KINDS: dict[str, ProviderKind] = {
    "openai": openai.KIND,
    "local": local.KIND,
    "tei": tei.KIND,
}

__all__ = ["KINDS", "Capabilities", "EmbedResult", "Provider", "ProviderKind"]

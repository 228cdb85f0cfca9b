"""Bearer keys: the config stores only sha256(key); a request's key is hashed
and looked up by digest. No secret bytes are ever compared: a timing
difference in the dict lookup could reveal at most something about a digest,
and a digest leads back to no key."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from router.errors import AuthenticationError
from router.settings import KeyConfig, KeyLimits

# The development keys the shipped config accepts (an API key, and an admin key for
# /admin and the console); `serve` refuses to bind a non-loopback address while a key
# with either hash is configured.
DEV_KEY = "sk-router-dev"
DEV_KEY_SHA256 = hashlib.sha256(DEV_KEY.encode()).hexdigest()
DEV_ADMIN_KEY = "sk-router-admin-dev"
DEV_ADMIN_KEY_SHA256 = hashlib.sha256(DEV_ADMIN_KEY.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    name: str
    models: tuple[str, ...]
    limits: KeyLimits
    model_limits: tuple[tuple[str, KeyLimits], ...] = ()

    def allows(self, *names: str) -> bool:
        return any(fnmatchcase(name, pattern) for name in names for pattern in self.models)


class KeyStore:
    def __init__(self, keys: Iterable[KeyConfig]) -> None:
        self._by_digest = {bytes.fromhex(k.sha256): Principal(k.name, k.models, k.limits, k.model_limits)
                           for k in keys}

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthenticationError("Missing API key: send it as 'Authorization: Bearer <key>'.")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise AuthenticationError("Malformed Authorization header: expected 'Bearer <key>'.")
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        principal = self._by_digest.get(digest)
        if principal is None:
            raise AuthenticationError("Incorrect API key provided.")
        return principal


def new_key() -> tuple[str, str]:
    """A fresh random key and its sha256, for `embeddings-router keys new`."""
    key = "sk-" + secrets.token_urlsafe(32)
    return key, hashlib.sha256(key.encode()).hexdigest()

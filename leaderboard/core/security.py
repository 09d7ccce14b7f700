"""API keys: shown once, stored as a SHA-256 digest, compared in constant time.

A key is ``pod_<prefix>_<secret>``: the prefix is public and indexed (to find the row), the
secret has 256 bits, so a fast digest is enough (no password stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_PREFIX = "pod_"


def new_api_key() -> tuple[str, str, str]:
    """Return (key, prefix, digest); only the prefix and digest are stored."""
    prefix = secrets.token_hex(6)
    key = f"{_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_key(key)


def new_registration_token() -> tuple[str, str]:
    """Return (token, digest); only the digest is stored. 256 bits, like an API key."""
    token = f"reg_{secrets.token_urlsafe(32)}"
    return token, hash_key(token)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, else None."""
    if not key.startswith(_PREFIX):
        return None
    prefix, sep, secret = key[len(_PREFIX):].partition("_")
    if not sep or len(prefix) != 12 or not secret:
        return None
    return prefix


def key_matches(key: str, digest: str) -> bool:
    return hmac.compare_digest(hash_key(key), digest)


def token_matches(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())

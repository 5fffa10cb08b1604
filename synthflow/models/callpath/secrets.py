"""Keeping secrets out of everything a run writes: rows, failure records, the cache, logs and
exception messages.

Some servers echo what they were sent (the ``Authorization`` header, a key in a 400's body).
``redact`` replaces every secret it knows with ``[REDACTED]``: the API keys the run's clients
use (``remember``), the values of the environment's ``*_KEY``, ``*_TOKEN``, ``*_SECRET`` and
``*_PASSWORD`` variables, and (in text) any ``Bearer`` credential. It is applied where a
server's words become ours: the HTTP boundary (every response body before it is parsed or
quoted, and an error's headers), the error a failed row keeps, and the CLI's error line.

The environment is read when a run starts (``refresh``) and on first use, not on every call:
a redaction is one substring test per secret.
"""

from __future__ import annotations

import os
import re

REDACTED = "[REDACTED]"

_ENV_SECRET = re.compile(r"(_KEY|_TOKEN|_SECRET|_PASSWORD)$")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
"""A bearer credential in text, whoever's it is (an ``Authorization`` header quoted back)."""
_MIN_LENGTH = 8
"""Shorter values are not treated as secrets: redacting "1" or "true" would garble text."""

_remembered: set[str] = set()
_known: tuple[str, ...] | None = None
_known_bytes: tuple[bytes, ...] = ()


def remember(secret: str | None) -> None:
    """Add a secret a client sends (an explicit ``api_key``) to those ``redact`` removes."""
    global _known
    if secret and len(secret) >= _MIN_LENGTH and secret not in _remembered:
        _remembered.add(secret)
        _known = None


def refresh() -> None:
    """Read the environment's secrets again (a run calls this when it starts)."""
    global _known
    _known = None


def known_secrets() -> tuple[str, ...]:
    """The secrets ``redact`` removes, longest first (so a key that contains another is
    removed whole)."""
    global _known, _known_bytes
    if _known is None:
        found = set(_remembered)
        for name, value in os.environ.items():
            if _ENV_SECRET.search(name.upper()) and len(value) >= _MIN_LENGTH:
                found.add(value)
        _known = tuple(sorted(found, key=len, reverse=True))
        _known_bytes = tuple(s.encode() for s in _known)
    return _known


def redact(text: str) -> str:
    """``text`` with every known secret, and any bearer credential, replaced by
    ``[REDACTED]``."""
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return text


def redact_bytes(data: bytes) -> bytes:
    """``redact`` for a raw response body, before it is decoded."""
    known_secrets()
    for secret in _known_bytes:
        if secret in data:
            data = data.replace(secret, REDACTED.encode())
    return data

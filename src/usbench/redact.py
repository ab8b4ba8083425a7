"""Masking secrets: the password in a URI (``--tracking-uri``, ``--storage``) is shown as
``***`` wherever usbench prints, logs or stores it (``postgresql://user:***@host/db``, as
SQLAlchemy and MLflow render URLs); connections use the real URI.

`redact` is the one place that masks. It masks the userinfo password of every URI in a text,
a ``password=`` query parameter, and any password it has already seen in a URI wherever it
appears again on its own, not inside a longer word (a driver's error may quote it).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote

MASK = "***"

# scheme://user:password@ (the password ends at the last character before '@' that is not
# whitespace or a quote; SQLAlchemy's own parser allows any other character there).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s'\"]*):"
                       r"(?P<password>[^@\s'\"]*)@")
_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<password>[^&#\s'\"]*)",
                    re.IGNORECASE)
# Shorter ones are not searched for on their own: masking every "ab" would garble messages.
_MIN_SEEN = 4
_seen: set[str] = set()


def _mask(match: re.Match) -> str:
    password = match["password"]
    if password and password != MASK:
        _seen.update({password, unquote(password)})
    return f"{match['head']}:{MASK}@" if match.re is _USERINFO else f"{match['head']}{MASK}"


def redact(value: Any) -> Any:
    """`value` with every password masked: a string, or the strings inside a dict, list or
    tuple (keys included); anything else is returned as is.

    Example: ``redact("postgresql+psycopg2://u:pw@db/optuna")`` gives
    ``"postgresql+psycopg2://u:***@db/optuna"``.
    """
    if isinstance(value, str):
        text = _QUERY.sub(_mask, _USERINFO.sub(_mask, value))
        for secret in sorted(_seen, key=len, reverse=True):
            if len(secret) >= _MIN_SEEN and secret in text:
                # On its own only: a password "PASSWORD" leaves the word PGPASSWORD whole.
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK,
                              text)
        return text
    if isinstance(value, dict):
        return {redact(k): redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    return value


class RedactFilter(logging.Filter):
    """A logging filter that masks passwords in each record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True

"""Request ids: accept a client's ``X-Request-Id`` if it is sane, otherwise make one."""

from __future__ import annotations

import os
import re

REQUEST_ID_HEADER = "X-Request-Id"
MAX_REQUEST_ID = 128
# Printable, no spaces or quotes: safe in a log line, a header and a JSON string unescaped.
_SANE = re.compile(rf"[A-Za-z0-9._:/+=@-]{{1,{MAX_REQUEST_ID}}}")


def request_id(incoming: str | None) -> str:
    """The incoming id when it is 1-128 characters of ``[A-Za-z0-9._:/+=@-]``, else a new
    random 128-bit id in hex (from the OS CSPRNG: ids must not be guessable or collide)."""
    if incoming and _SANE.fullmatch(incoming):
        return incoming
    return os.urandom(16).hex()

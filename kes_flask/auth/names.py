"""The KES name and listing-pattern rules (api.md §3.1, §3.2)."""

from __future__ import annotations

import re

_NAME = re.compile(r"[0-9A-Za-z_](?:[0-9A-Za-z_-]{0,78}[0-9A-Za-z_])?")


def valid_name(name: str) -> bool:
    """1..80 ASCII bytes of ``[0-9A-Za-z_-]``, ``-`` neither first nor last, not exactly ``_``."""
    return name != "_" and _NAME.fullmatch(name) is not None


def valid_pattern(pattern: str) -> bool:
    """A name prefix with an optional trailing ``*``; ``*`` alone and the empty string are valid."""
    if pattern in ("", "*"):
        return True
    if len(pattern) > 80 or pattern == "_":
        return False
    body = pattern[:-1] if pattern.endswith("*") else pattern
    if not body:
        return True
    if "*" in body or body[0] == "-":
        return False
    # A trailing "-" is fine before "*" ("a-*") but not at the very end ("ab-").
    if body[-1] == "-" and not pattern.endswith("*"):
        return False
    return all(c.isascii() and (c.isalnum() or c in "_-") for c in body)

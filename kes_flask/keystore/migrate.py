"""Copy stored keys from one keystore to another, byte for byte, never overwriting.

The values are the backends' opaque encodings (key material, HMAC key, metadata), so copying
the raw bytes is all a migration is: nothing is decoded, re-encrypted or re-dated, and a key
migrated from Go KES's store reads the same afterwards. A name that already exists at the
target is skipped and reported (or, with ``strict``, the migration refuses to start), because
an operator who overwrites a master key loses every object encrypted under it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from kes_flask.keystore.base import UNLIMITED, KeyExistsError, KeyNotFoundError, Keystore


class MigrationConflict(Exception):
    """``strict`` was asked for and some names already exist at the target."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        super().__init__(
            f"{len(names)} key(s) already exist at the target: {shown} "
            "(run without '--strict' to skip them, or delete them at the target first)"
        )


@dataclass
class MigrationReport:
    matched: int = 0  # source names matching the pattern
    copied: list[str] = field(default_factory=list)  # created at the target (or would be)
    skipped: list[str] = field(default_factory=list)  # already at the target, left unchanged
    vanished: list[str] = field(default_factory=list)  # listed at the source, gone when read
    dry_run: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "matched": self.matched,
            "migrated": len(self.copied),
            "skipped": len(self.skipped),
            "vanished": len(self.vanished),
            "migrated_keys": self.copied,
            "skipped_keys": self.skipped,
            "vanished_keys": self.vanished,
        }


def matching_names(store: Keystore, pattern: str) -> list[str]:
    """Every name of ``store`` matching the glob (``*``, ``?``, ``[...]``), sorted by bytes.

    The listing is narrowed to the pattern's literal prefix first, so a tenant's keys are
    found without enumerating the whole store.
    """
    literal = len(pattern)
    for index, char in enumerate(pattern):
        if char in "*?[\\":
            literal = index
            break
    names, _ = store.list(pattern[:literal], UNLIMITED)
    return [name for name in names if fnmatch.fnmatchcase(name, pattern)]


def _exists(store: Keystore, name: str) -> bool:
    try:
        store.get(name)
    except KeyNotFoundError:
        return False
    return True


def migrate_keys(
    source: Keystore,
    target: Keystore,
    pattern: str = "*",
    *,
    names: list[str] | None = None,
    dry_run: bool = False,
    strict: bool = False,
    progress: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Create every matching source key at ``target`` unchanged; report what happened.

    ``names`` is ``matching_names(source, pattern)`` when the caller listed it already (to
    size a progress bar). ``progress`` is called once per name handled. Keystore errors
    propagate: the report of what was copied so far is lost with them, but every copied key
    is complete (the backends' ``create`` is atomic) and a re-run skips it.
    """
    if names is None:
        names = matching_names(source, pattern)
    report = MigrationReport(matched=len(names), dry_run=dry_run)
    if strict:
        present = set(matching_names(target, pattern))
        conflicts = [name for name in names if name in present]
        if conflicts:
            raise MigrationConflict(conflicts)
    for name in names:
        try:
            value = source.get(name)
        except KeyNotFoundError:
            report.vanished.append(name)  # deleted at the source while we ran
        else:
            if dry_run:
                exists = _exists(target, name)
                (report.skipped if exists else report.copied).append(name)
            else:
                try:
                    target.create(name, value)
                except KeyExistsError:
                    if strict:
                        raise MigrationConflict([name]) from None
                    report.skipped.append(name)
                else:
                    report.copied.append(name)
        if progress is not None:
            progress(name)
    return report

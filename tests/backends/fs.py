"""The filesystem keystore: a fresh directory per call."""

from __future__ import annotations

import pytest


def keystore(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("fs-keystore") / "keys"
    return f"keystore:\n  fs:\n    path: {path}\n"

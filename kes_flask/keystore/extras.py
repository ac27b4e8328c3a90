"""Optional extras: cloud SDKs are imported only by the backend that needs them.

The base install stays light (no boto3, azure or google libraries). A configuration that names a
cloud keystore whose extra is not installed must stop at start-up with the one command that fixes
it, not with an ImportError traceback from deep inside a worker.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kes_flask.config.errors import ConfigError

# keystore kind -> (extra name, label used in messages)
EXTRAS: dict[str, tuple[str, str]] = {
    "aws": ("aws", "AWS Secrets Manager (keystore.aws.secretsmanager)"),
    "gcp": ("gcp", "GCP Secret Manager (keystore.gcp.secretmanager)"),
    "azure": ("azure", "Azure Key Vault (keystore.azure.keyvault)"),
}


def install_hint(kind: str) -> str:
    """The exact command that installs what ``kind`` needs."""
    extra, _ = EXTRAS[kind]
    return f"pip install 'kes-flask[{extra}]'"


def import_sdk(kind: str, module: str) -> ModuleType:
    """Import ``module`` for keystore ``kind``; a missing library becomes a ``ConfigError``.

    Only a missing module is translated: an SDK that is installed but broken raises its own
    error so the operator sees the real cause.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        _, label = EXTRAS[kind]
        missing = err.name or module
        raise ConfigError(
            f"keystore {label} needs the Python package providing '{missing}', which is not "
            f"installed: run {install_hint(kind)}"
        ) from None

"""The HashiCorp Vault (and OpenBao) keystore on hvac (keystores.md §3).

``transport`` does HTTP and TLS, ``auth`` logs in and renews the token, ``keystore`` maps the
keystore interface onto K/V v1/v2 and transit.
"""

from kes_flask.keystore.vault.keystore import VaultKeystore

__all__ = ["VaultKeystore"]

"""The two failures the crypto layer reports; the API maps each to one fixed response."""


class DecryptionError(Exception):
    """A ciphertext is malformed or not authentic.

    Every such failure is reported the same way (400 ``decryption failed: ciphertext is not
    authentic``), so the message never says which check failed.
    """


class KeyFormatError(Exception):
    """A stored key value cannot be parsed (502 ``failed to read key``)."""

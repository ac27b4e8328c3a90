"""HChaCha20, the ChaCha20 sub-key derivation KES uses for ChaCha20 keys.

``cryptography`` has no HChaCha20, but one ChaCha20 keystream block whose 16-byte counter-and-
nonce input is the HChaCha20 input holds the same rounds output plus the initial state; output
words 0-3 and 12-15 minus the initial constants and input words are HChaCha20's result.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

KEY_SIZE = 32
INPUT_SIZE = 16

_BLOCK_WORDS = struct.Struct("<16I")
_INPUT_WORDS = struct.Struct("<4I")
_OUTPUT_WORDS = struct.Struct("<8I")
_CONSTANT_WORDS = _INPUT_WORDS.unpack(b"expand 32-byte k")
_ZERO_BLOCK = bytes(64)
_MASK32 = 0xFFFF_FFFF


def hchacha20(key: bytes, nonce: bytes) -> bytes:
    """Return the 32-byte HChaCha20 output for a 32-byte key and a 16-byte input."""
    if len(key) != KEY_SIZE or len(nonce) != INPUT_SIZE:
        raise ValueError("HChaCha20 needs a 32-byte key and a 16-byte input")
    block = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor().update(_ZERO_BLOCK)
    words = _BLOCK_WORDS.unpack(block)
    input_words = _INPUT_WORDS.unpack(nonce)
    return _OUTPUT_WORDS.pack(
        (words[0] - _CONSTANT_WORDS[0]) & _MASK32,
        (words[1] - _CONSTANT_WORDS[1]) & _MASK32,
        (words[2] - _CONSTANT_WORDS[2]) & _MASK32,
        (words[3] - _CONSTANT_WORDS[3]) & _MASK32,
        (words[12] - input_words[0]) & _MASK32,
        (words[13] - input_words[1]) & _MASK32,
        (words[14] - input_words[2]) & _MASK32,
        (words[15] - input_words[3]) & _MASK32,
    )

"""Ciphertext formats and AEAD behaviour: api.md §8.3-8.5 and the vectors of §8.9."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random

import pytest

from kes_flask.crypto import Algorithm, DecryptionError, SecretKey
from kes_flask.crypto import ciphertext as ct
from kes_flask.crypto.hchacha20 import hchacha20

Z32 = bytes(32)
K2 = base64.b64decode("dDHbTWgo+Yh3u804SYB5OyVMy6RiLeJYBQth1f6KlEU=")
P16 = bytes(16)
P28 = base64.b64decode("CLcJoykFCWZDkEIiUq9bJRqwCwW9ZDvdgu8EMA==")
AD16 = bytes(16)
AES, CHACHA = Algorithm.AES256, Algorithm.CHACHA20


def b64(text: str) -> bytes:
    return base64.b64decode(text)


D5 = b64("zwdDgHeRlIFRnJ7+DIhs/ka7GFK2CFSfDELqg1VCyTQzZ58o7MAdupMLk3ZjlMo2ZUDwldL2o41nAWDc")
D6 = b64(
    "s2gmfQHeGdlyL8x1yEWSACUV3GrSoz3t160hugMgzKWgyqesXDVUJ5Dw5Mt076rR1PNiU9X4YjLH14D8a81t2r2x"
    "sz4gVZac"
)
D7 = b64(
    "gO4woRIswAJdjUjW7z2ApsSQxJlwB24yjLrmH4eI7sB0uh5nfEJfk9ybTPFft5FRFaZCVBmzhx7OJs9n0WWtxH3s"
    "ySIxecIK"
)

DECRYPT_VECTORS = [
    (
        "D0",
        AES,
        Z32,
        b"",
        b'{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==",'
        b'"nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}',
        P16,
    ),
    (
        "D1",
        CHACHA,
        Z32,
        b"",
        b'{"aead":"ChaCha20Poly1305","iv":"s3fSZ6vk5m+DfQA8yZWeUg==","nonce":"8/kHMnCMs3h9NZ2a",'
        b'"bytes":"cw22HjLq/4cx8507SW4hhSrYbDiMuRao4b5+GE+XfbE="}',
        P16,
    ),
    (
        "D2",
        CHACHA,
        Z32,
        b"",
        b'{"aead":"ChaCha20Poly1305","id":"66687aadf862bd776c8fc18b8e9f8e20",'
        b'"iv":"EC0eZp7Pqt+LnkOae5xaAg==","nonce":"X1ejXKmH/ugFZPkk",'
        b'"bytes":"wIGBTDs6aOvsqJfekZ0PYRT/OHyFX2TXqeNwl1SLXOI="}',
        P16,
    ),
    (
        "D3",
        AES,
        Z32,
        b"",
        b64(
            "lbFBRVMyNTYtR0NNX1NIQTI1NtkgNjY2ODdhYWRmODYyYmQ3NzZjOGZjMThiOGU5ZjhlMjDEEExv7LAd4oz0"
            "SaHZrX5LBufEDEKME1ow1CDfUFrqv8QgJuy7Sw+jVqz99TK1HV851LT3K4mwwDv46TB2ngWkAJQ="
        ),
        P16,
    ),
    (
        "D4",
        CHACHA,
        Z32,
        b"",
        b64(
            "lbJYQ0hBQ0hBMjAtUE9MWTEzMDXZIDY2Njg3YWFkZjg2MmJkNzc2YzhmYzE4YjhlOWY4ZTIwxBBAr+aptD4x"
            "2+qfOhiErbnkxAxYs8RmNC1JJXD1hiHEIJ2KqM0jjkME7ndx8nyVseesN83Np0rM5ejVUun+fNFu"
        ),
        P16,
    ),
    ("D5", AES, Z32, b"", D5, P16),
    ("D6", AES, K2, AD16, D6, P28),
    ("D7", CHACHA, K2, AD16, D7, P28),
    (
        "D8",
        AES,
        Z32,
        b"",
        b'{"aead":"AES-256-GCM","iv":"xLxIN3tSCkg2xMafuvwUwg==","nonce":"gu0mGwUkwcvMEoi5",'
        b'"bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}',
        None,
    ),
    (
        "D9",
        AES,
        Z32,
        b"",
        b'{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"EjOY4JKqjIrPmQ5z1KSR8zlhggY=",'
        b'"nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}',
        None,
    ),
    (
        "D10",
        CHACHA,
        Z32,
        b"",
        b'{"aead":"ChaCha20Poly1305","iv":"s3fSZ6vk5m+DfQA8yZWeUg==","nonce":"SXAbms731/c=",'
        b'"bytes":"cw22HjLq/4cx8507SW4hhSrYbDiMuRao4b5+GE+XfbE="}',
        None,
    ),
    (
        "D11",
        AES,
        Z32,
        b"",
        b'{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==",'
        b'"nonce":"efY+4kYF9n8=","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}',
        None,
    ),
    (
        "D12",
        AES,
        Z32,
        b"",
        b'{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==",'
        b'"nonce":"gu0mGwUkwcvMEoi5","bytes":"QTza1g5oX3f9cGJMbY1xJwWPj1F7R2VnNl6XpFKYQy0="}',
        None,
    ),
    (
        "D13",
        CHACHA,
        Z32,
        b"",
        b'{"aead":"ChaCha20Poly1305","iv":"s3fSZ6vk5m+DfQA8yZWeUg==","nonce":"8/kHMnCMs3h9NZ2a",'
        b'"bytes":"TTi8pkO+Jh1JWAHvPxZeUk/iVoBPUCE4ZSVGBy3fW2s="}',
        None,
    ),
    (
        "D14",
        AES,
        Z32,
        b"",
        b'{"aead":"AES-256-GCM-HMAC-SHA-256" "iv":"xLxIN3tSCkg2xMafuvwUwg==",'
        b'"nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}',
        None,
    ),
]


@pytest.mark.parametrize(
    ("algorithm", "key", "context", "data", "expected"),
    [case[1:] for case in DECRYPT_VECTORS],
    ids=[case[0] for case in DECRYPT_VECTORS],
)
def test_decrypt_vectors(
    algorithm: Algorithm, key: bytes, context: bytes, data: bytes, expected: bytes | None
) -> None:
    secret = SecretKey(key, algorithm)
    if expected is None:
        with pytest.raises(DecryptionError):
            secret.decrypt(data, context)
    else:
        assert secret.decrypt(data, context) == expected


@pytest.mark.parametrize(
    ("algorithm", "key", "plaintext", "context"),
    [(AES, Z32, P16, b""), (AES, K2, P16, b""), (AES, K2, P28, AD16), (CHACHA, K2, P28, AD16)],
    ids=["E0", "E1", "E2", "E3"],
)
def test_encrypt_round_trip(
    algorithm: Algorithm, key: bytes, plaintext: bytes, context: bytes
) -> None:
    secret = SecretKey(key, algorithm)
    first, second = secret.encrypt(plaintext, context), secret.encrypt(plaintext, context)
    assert len(first) == len(plaintext) + 44
    assert first != second  # 28 fresh random bytes per message
    assert secret.decrypt(first, context) == plaintext
    assert secret.decrypt(second, context) == plaintext
    assert secret.decrypt(bytearray(first), context) == plaintext
    assert secret.decrypt(memoryview(_msgpack(ct.split(second))), context) == plaintext


@pytest.mark.parametrize(
    ("data", "sealed", "iv", "nonce", "derived_key"),
    [
        (
            D5,
            "cf07438077919481519c9efe0c886cfe46bb1852b608549f0c42ea835542c934",
            "33679f28ecc01dba930b93766394ca36",
            "6540f095d2f6a38d670160dc",
            "80ebfc99a687d9377850d80a16b2b1d185beb953349212d44638bba321661f6a",
        ),
        (
            D6,
            "b368267d01de19d9722fcc75c84592002515dc6ad2a33dedd7ad21ba0320cca5a0caa7ac5c35542790f0e4cb",
            "74efaad1d4f36253d5f86232c7d780fc",
            "6bcd6ddabdb1b33e2055969c",
            "b02a332a8bca69686dba3a983c0334944f380951281ea3a222373996a5a0a97f",
        ),
    ],
    ids=["D5", "D6"],
)
def test_raw_layout_and_aes_key_derivation(
    data: bytes, sealed: str, iv: str, nonce: str, derived_key: str
) -> None:
    parts = ct.split(data)
    assert (parts.sealed.hex(), parts.iv.hex(), parts.nonce.hex()) == (sealed, iv, nonce)
    key = Z32 if data is D5 else K2
    assert hmac.new(key, parts.iv, hashlib.sha256).hexdigest() == derived_key


def test_raw_layout_and_chacha20_key_derivation_d7() -> None:
    parts = ct.split(D7)
    assert parts.iv.hex() == "5fb7915115a6425419b3871ece26cf67"
    assert parts.nonce.hex() == "d165adc47decc9223179c20a"
    assert len(parts.sealed) == 28 + 16
    assert hchacha20(K2, parts.iv).hex() == (
        "33c9d554900c9205af5c734019603b89206079233ff7c8acef7b5ea7a0e9e461"
    )


def test_hchacha20_draft_irtf_cfrg_xchacha_vector() -> None:
    out = hchacha20(bytes(range(32)), bytes.fromhex("000000090000004a0000000031415927"))
    assert out.hex() == "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"


def test_hchacha20_rejects_wrong_sizes() -> None:
    with pytest.raises(ValueError):
        hchacha20(bytes(31), bytes(16))
    with pytest.raises(ValueError):
        hchacha20(bytes(32), bytes(12))


@pytest.mark.parametrize("algorithm", [AES, CHACHA])
def test_wrong_context_key_or_algorithm_fails(algorithm: Algorithm) -> None:
    secret = SecretKey(K2, algorithm)
    data = secret.encrypt(P28, AD16)
    with pytest.raises(DecryptionError):
        secret.decrypt(data, b"")
    with pytest.raises(DecryptionError):
        secret.decrypt(data, AD16 + b"\x00")
    with pytest.raises(DecryptionError):
        SecretKey(Z32, algorithm).decrypt(data, AD16)
    other = CHACHA if algorithm is AES else AES
    with pytest.raises(DecryptionError):
        SecretKey(K2, other).decrypt(data, AD16)


@pytest.mark.parametrize("algorithm", [AES, CHACHA])
def test_every_single_bit_flip_and_truncation_fails(algorithm: Algorithm) -> None:
    secret = SecretKey(K2, algorithm)
    data = secret.encrypt(P16, b"ctx")
    for i in range(len(data)):
        modified = bytearray(data)
        modified[i] ^= 0x01
        with pytest.raises(DecryptionError):
            secret.decrypt(bytes(modified), b"ctx")
    for length in range(len(data)):
        with pytest.raises(DecryptionError):
            secret.decrypt(data[:length], b"ctx")


@pytest.mark.parametrize("data", [b"", b"\x00", bytes(28), b"\x95", b"{", b"{}" + bytes(27)])
def test_empty_and_short_inputs_fail(data: bytes) -> None:
    with pytest.raises(DecryptionError):
        SecretKey(Z32, AES).decrypt(data)


@pytest.mark.parametrize("algorithm", [AES, CHACHA])
def test_empty_and_large_plaintexts_round_trip(algorithm: Algorithm) -> None:
    secret = SecretKey(K2, algorithm)
    empty = secret.encrypt(b"")
    assert len(empty) == 44
    assert secret.decrypt(empty) == b""
    big = bytes(range(256)) * 256
    assert secret.decrypt(secret.encrypt(big, b"a"), b"a") == big


@pytest.mark.parametrize("first_byte", [0x95, 0x7B])
def test_raw_ciphertext_looking_like_an_envelope_still_decrypts(first_byte: int) -> None:
    secret = SecretKey(K2, AES)
    for _ in range(20_000):
        data = secret.encrypt(P16)
        if data[0] == first_byte:
            break
    else:
        pytest.fail("no ciphertext with the wanted first byte")  # p < 1e-30
    assert secret.decrypt(data) == P16


# Legacy envelopes built from a fresh raw ciphertext.


def _parts(algorithm: Algorithm = AES, context: bytes = b"") -> tuple[SecretKey, ct.RawParts]:
    secret = SecretKey(K2, algorithm)
    return secret, ct.split(secret.encrypt(P28, context))


def _mp_str(value: bytes, header: bytes) -> bytes:
    if header == b"fix":
        return bytes([0xA0 | len(value)]) + value
    size = {b"\xd9": 1, b"\xda": 2, b"\xdb": 4}[header]
    return header + len(value).to_bytes(size, "big") + value


def _mp_bin(value: bytes, header: bytes = b"\xc4") -> bytes:
    size = {b"\xc4": 1, b"\xc5": 2, b"\xc6": 4}[header]
    return header + len(value).to_bytes(size, "big") + value


def _msgpack(parts: ct.RawParts, algorithm: bytes = b"AES256", **forms: bytes) -> bytes:
    return (
        b"\x95"
        + _mp_str(algorithm, forms.get("alg", b"fix"))
        + _mp_str(b"66687aadf862bd776c8fc18b8e9f8e20", forms.get("id", b"\xd9"))
        + _mp_bin(parts.iv, forms.get("iv", b"\xc4"))
        + _mp_bin(parts.nonce, forms.get("nonce", b"\xc4"))
        + _mp_bin(parts.sealed, forms.get("sealed", b"\xc4"))
    )


@pytest.mark.parametrize(
    "forms",
    [
        {},
        {"alg": b"\xd9", "id": b"\xda"},
        {"alg": b"\xda", "id": b"\xdb"},
        {"iv": b"\xc5", "nonce": b"\xc6", "sealed": b"\xc6"},
    ],
)
def test_msgpack_envelope_with_any_str_and_bin_width(forms: dict[str, bytes]) -> None:
    secret, parts = _parts()
    assert secret.decrypt(_msgpack(parts, **forms)) == P28


@pytest.mark.parametrize(
    "name", [b"AES256-GCM_SHA256", b"XCHACHA20-POLY1305", b"AES256", b"ChaCha20"]
)
@pytest.mark.parametrize("algorithm", [AES, CHACHA])
def test_msgpack_algorithm_name_never_selects_the_aead(name: bytes, algorithm: Algorithm) -> None:
    secret, parts = _parts(algorithm)
    assert secret.decrypt(_msgpack(parts, name)) == P28


def test_malformed_msgpack_envelopes_fail() -> None:
    secret, parts = _parts()
    good = _msgpack(parts)
    assert secret.decrypt(good) == P28
    bad = [
        good + b"\x00",  # trailing byte
        _msgpack(parts, b"aes256"),  # unknown algorithm name
        _msgpack(parts, b""),
        _msgpack(ct.RawParts(parts.sealed, parts.iv[:15], parts.nonce)),
        _msgpack(ct.RawParts(parts.sealed, parts.iv, parts.nonce + b"\x00")),
        good.replace(_mp_bin(parts.iv), _mp_str(parts.iv, b"\xd9"), 1),  # str, not bin
        good[:-1],
    ]
    for data in bad:
        with pytest.raises(DecryptionError):
            secret.decrypt(data)


def _json(parts: ct.RawParts, aead: str = "AES-256-GCM-HMAC-SHA-256", **extra: str) -> bytes:
    fields = {
        "aead": f'"{aead}"',
        "iv": '"' + base64.b64encode(parts.iv).decode() + '"',
        "nonce": '"' + base64.b64encode(parts.nonce).decode() + '"',
        "bytes": '"' + base64.b64encode(parts.sealed).decode() + '"',
    }
    fields.update(extra)
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


def test_json_envelope_follows_go_decoding_rules() -> None:
    secret, parts = _parts(context=b"c")
    iv_b64 = base64.b64encode(parts.iv).decode()
    accepted = [
        _json(parts),
        _json(parts, "ChaCha20Poly1305"),  # the label does not pick the AEAD
        _json(parts, id='"66687aadf862bd776c8fc18b8e9f8e20"', extra="[1, {}]"),
        _json(parts).replace(b'"aead"', b'"AEAD"').replace(b'"iv"', b'"Iv"'),
        _json(parts).replace(b'"bytes"', b'"byte\xc5\xbf"'),  # U+017F folds to "s" like Go
        _json(parts, iv=f'"{iv_b64[:8]}\\n{iv_b64[8:]}"'),  # newline ignored by base64
        _json(parts, iv=f'"\\u00{ord(iv_b64[0]):02x}{iv_b64[1:]}"'),  # JSON escape
        _json(parts) + b" \n\t",
    ]
    for data in accepted:
        assert secret.decrypt(data, b"c") == P28, data
    rejected = [
        _json(parts, "AES-256-GCM"),
        _json(parts, "aes-256-gcm-hmac-sha-256"),
        _json(parts, id="5"),  # type mismatch fails the whole envelope
        _json(parts, iv="null"),
        _json(parts, iv=f'"{iv_b64.rstrip("=")}"'),  # Go requires padding
        _json(parts, iv=f'" {iv_b64}"'),
        _json(parts) + b"x",
        _json(parts, bytes='""'),
        b" " + _json(parts),  # not "{" first: decrypted as raw bytes
    ]
    for data in rejected:
        with pytest.raises(DecryptionError):
            secret.decrypt(data, b"c")


def test_decrypt_raises_only_decryption_error_on_mutated_inputs() -> None:
    rng = random.Random(20240229)
    secret = SecretKey(Z32, AES)
    seeds = [case[4] for case in DECRYPT_VECTORS]
    failures = 0
    for _ in range(400):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data) + 1)
            op = rng.randrange(3)
            if op == 0 and i < len(data):
                data[i] = rng.randrange(256)
            elif op == 1:
                del data[i:]
            else:
                data.insert(i, rng.choice(b'\x00"\\{}=,:'))
        try:
            secret.decrypt(bytes(data))
        except DecryptionError:
            failures += 1
    assert failures > 300

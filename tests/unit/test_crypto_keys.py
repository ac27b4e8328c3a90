"""Key model, stored-key formats and timestamps: api.md §8.1-8.2, §8.7 and the vectors of §8.9."""

from __future__ import annotations

import base64
import hashlib
import random
import time

import pytest

from kes_flask.crypto import (
    ZERO_TIME,
    Algorithm,
    HMACKey,
    KeyFormatError,
    KeyVersion,
    SecretKey,
    Timestamp,
)
from kes_flask.crypto import protobuf as pb

Z32 = bytes(32)
Z32_B64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
CREATOR = "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"
K5 = (
    b"CiQKIMiHG7XrN94FuwblJJor4f7f6rbqAl7DwsLaiIoyz0D2EAESJAognLXl4yqa4cjZTcSbsU6sNnN8kP9ARWk"
    b"Xwa20YQZa9HgQARoMCNithK0GEID67qYDIkAzZWNmY2RmMzhmY2JlMTQxYWUyNmExMDMwZjgxZTk2Yjc1MzM2N"
    b"WE0Njc2MGFlNmI1Nzg2OThhOTdjNTlmZDIy"
)
K5_HEX = (
    "0a240a20c8871bb5eb37de05bb06e5249a2be1fedfeab6ea025ec3c2c2da888a32cf40f6100112240a209cb5e5e3"
    "2a9ae1c8d94dc49bb14eac36737c90ff40456917c1adb461065af47810011a0c08d8ad84ad061080faeea603224033"
    "656366636466333866636265313431616532366131303330663831653936623735333336356134363736306165366"
    "235373836393861393763353966643232"
)
K5_SECRET = base64.b64decode("yIcbtes33gW7BuUkmivh/t/qtuoCXsPCwtqIijLPQPY=")
K5_HMAC = base64.b64decode("nLXl4yqa4cjZTcSbsU6sNnN8kP9ARWkXwa20YQZa9Hg=")
K5_CREATED = Timestamp(1705055960, 886816000)
S0 = (
    b"CiQKIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEAESJAogAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    b"AAAAAAAAQARoMCNithK0GEID67qYDIkAzZWNmY2RmMzhmY2JlMTQxYWUyNmExMDMwZjgxZTk2Yjc1MzM2NWE0Njc2M"
    b"GFlNmI1Nzg2OThhOTdjNTlmZDIy"
)
K2_LEGACY = base64.b64decode("J8qmOyEV2ce2yoAC+5t0Y7CSP/hTMppL7XHpAnyc+0E=")
K4_LEGACY = base64.b64decode("9ew6BCae3+13sniOUwttEJ62amg98YXc0OW0WBhNiCY=")


# Algorithm


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AES256", Algorithm.AES256),
        ("AES256-GCM_SHA256", Algorithm.AES256),
        ("ChaCha20", Algorithm.CHACHA20),
        ("XCHACHA20-POLY1305", Algorithm.CHACHA20),
    ],
)
def test_algorithm_parse(name: str, expected: Algorithm) -> None:
    assert Algorithm.parse(name) is expected


@pytest.mark.parametrize("name", ["", "aes256", "CHACHA20", "AES256 ", "%!2", "AES-256-GCM"])
def test_algorithm_parse_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        Algorithm.parse(name)


def test_algorithm_names_and_protobuf_ids() -> None:
    assert (str(Algorithm.AES256), Algorithm.AES256.go_name, Algorithm.AES256.value) == (
        "AES256",
        "AES256",
        1,
    )
    assert (str(Algorithm.CHACHA20), Algorithm.CHACHA20.value) == ("ChaCha20", 2)


# Timestamp


@pytest.mark.parametrize(
    ("timestamp", "text"),
    [
        (K5_CREATED, "2024-01-12T10:39:20.886816Z"),
        (Timestamp(1257894000), "2009-11-10T23:00:00Z"),
        (ZERO_TIME, "0001-01-01T00:00:00Z"),
        (Timestamp(0), "1970-01-01T00:00:00Z"),
        (Timestamp(0, 1), "1970-01-01T00:00:00.000000001Z"),
        (Timestamp(0, 100_000_000), "1970-01-01T00:00:00.1Z"),
        (Timestamp(-1, 500_000_000), "1969-12-31T23:59:59.5Z"),
        (Timestamp(951_825_600), "2000-02-29T12:00:00Z"),
        (Timestamp(253_402_300_799, 999_999_999), "9999-12-31T23:59:59.999999999Z"),
        (Timestamp(-62_167_222_800), "-0001-12-31T23:00:00Z"),  # as Go prints year -1
    ],
)
def test_timestamp_rfc3339(timestamp: Timestamp, text: str) -> None:
    assert timestamp.rfc3339() == text
    assert str(timestamp) == text
    if not text.startswith("-"):
        assert Timestamp.parse_rfc3339(text) == timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-12T11:39:20.886816+01:00", K5_CREATED),
        ("2024-01-12T05:09:20.886816-05:30", K5_CREATED),
        ("2009-11-10T23:00:00.000Z", Timestamp(1257894000)),
        ("0001-01-01T00:00:00Z", ZERO_TIME),
        ("0000-01-01T00:00:00+01:00", Timestamp(-62_167_222_800)),
        # Go's time.Parse is laxer than RFC 3339 (its strict checks are disabled):
        ("2009-11-10T3:00:00Z", Timestamp(1257822000)),
        ("2024-01-01T00:00:00,5Z", Timestamp(1704067200, 500_000_000)),
        ("2024-01-12T10:39:20.8868161234567Z", Timestamp(1705055960, 886816123)),
        ("2024-01-01T00:00:00+24:00", Timestamp(1703980800)),
        ("2024-01-01T00:00:00-00:60", Timestamp(1704070800)),
    ],
)
def test_timestamp_parse_rfc3339(text: str, expected: Timestamp) -> None:
    assert Timestamp.parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2009-11-10T23:00:00",  # no offset
        "2009-11-10T23:00:00z",
        "2009-11-10 23:00:00Z",
        "2009-11-10T23:00:00+0100",
        "2009-11-10T23:00:00+01",
        "2009-11-10T23:00:00.Z",
        "2009-11-10T23:00:00Z ",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2009-13-10T23:00:00Z",
        "2009-11-00T23:00:00Z",
        "2009-11-10T24:00:00Z",
        "2009-11-10T23:60:00Z",
        "2009-11-10T23:00:60Z",
        "2009-11-10T23:00:00+25:00",
        "2009-11-10T23:00:00+00:61",
        "209-11-10T23:00:00Z",
        "+2009-11-10T23:00:00Z",
        "\uff12009-11-10T23:00:00Z",  # non-ASCII (fullwidth) digit
    ],
)
def test_timestamp_parse_rfc3339_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Timestamp.parse_rfc3339(text)


def test_timestamp_basics() -> None:
    assert ZERO_TIME == Timestamp(-62_135_596_800, 0)
    assert Timestamp(1, 0) < Timestamp(1, 1) < Timestamp(2, 0)
    with pytest.raises(ValueError):
        Timestamp(0, 1_000_000_000)
    with pytest.raises(ValueError):
        Timestamp(0, -1)
    before = time.time_ns()
    now = Timestamp.now()
    after = time.time_ns()
    assert before <= now.seconds * 1_000_000_000 + now.nanos <= after


# SecretKey / HMACKey


def test_secret_key_validation_and_privacy() -> None:
    with pytest.raises(ValueError):
        SecretKey(bytes(31), Algorithm.AES256)
    with pytest.raises(ValueError):
        SecretKey(bytes(33), Algorithm.CHACHA20)
    key = SecretKey(K5_SECRET, Algorithm.CHACHA20)
    assert key.algorithm is Algorithm.CHACHA20
    assert repr(key) == "SecretKey(algorithm=ChaCha20)"
    assert key == SecretKey(K5_SECRET, Algorithm.CHACHA20)
    assert key != SecretKey(K5_SECRET, Algorithm.AES256)
    assert key != SecretKey(Z32, Algorithm.CHACHA20)
    with pytest.raises(AttributeError):
        key.algorithm = Algorithm.AES256  # type: ignore[misc]


def _reference_hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC per RFC 2104 from hashlib alone, independent of the hmac module."""
    block = key.ljust(64, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in block) + inner).digest()


def test_hmac_key() -> None:
    key = HMACKey(K5_HMAC)
    # Computed by Go KES (crypto.HMACKey.Sum) for the K5 key version and message "x".
    assert key.mac(b"x").hex() == "50e4e1332deb43a3d4de5e72c3c805c4cbff448066082cb71b12c1657a8e83e0"
    assert key.mac(b"x") == key.mac(b"x")
    assert key.mac(b"x") != key.mac(b"y")
    for message in (b"", b"what do ya want for nothing?", bytes(1000)):
        assert key.mac(message) == _reference_hmac_sha256(K5_HMAC, message)
    assert len(HMACKey(Z32).mac(b"")) == 32
    assert repr(key) == "HMACKey(hash=SHA256)"
    assert K5_HMAC.hex() not in repr(KeyVersion.parse(K5))
    with pytest.raises(ValueError):
        HMACKey(bytes(16))


# KeyVersion.parse: the stored-key vectors K0-K9


@pytest.mark.parametrize(
    ("value", "algorithm", "key", "created_at", "created_by"),
    [
        (b'{"bytes":"%s"}' % Z32_B64.encode(), Algorithm.AES256, Z32, ZERO_TIME, ""),
        (
            b'{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE="}',
            Algorithm.AES256,
            bytes(31) + b"\x01",
            ZERO_TIME,
            "",
        ),
        (
            b'{"bytes":"J8qmOyEV2ce2yoAC+5t0Y7CSP/hTMppL7XHpAnyc+0E="}',
            Algorithm.AES256,
            K2_LEGACY,
            ZERO_TIME,
            "",
        ),
        (
            b'{"bytes":"J8qmOyEV2ce2yoAC+5t0Y7CSP/hTMppL7XHpAnyc+0E=","algorithm":"AES256-GCM_SHA256",'
            b'"created_at":"2009-11-10T23:00:00Z","created_by":"40235905b7b83e0537a002db523cd019d67'
            b'09b899adc249c957860cd00fa9f78"}',
            Algorithm.AES256,
            K2_LEGACY,
            Timestamp(1257894000),
            "40235905b7b83e0537a002db523cd019d6709b899adc249c957860cd00fa9f78",
        ),
        (
            b'{"bytes":"9ew6BCae3+13sniOUwttEJ62amg98YXc0OW0WBhNiCY=","algorithm":"XCHACHA20-POLY1305",'
            b'"created_at":"2009-11-10T23:00:00Z","created_by":"189d9de5331e3ee8abe9e4bd40d474ad621d'
            b'79ccf83a711f6ac68050eb15a52a"}',
            Algorithm.CHACHA20,
            K4_LEGACY,
            Timestamp(1257894000),
            "189d9de5331e3ee8abe9e4bd40d474ad621d79ccf83a711f6ac68050eb15a52a",
        ),
    ],
    ids=["K0", "K1", "K2", "K3", "K4"],
)
def test_parse_legacy_vectors(
    value: bytes, algorithm: Algorithm, key: bytes, created_at: Timestamp, created_by: str
) -> None:
    version = KeyVersion.parse(value)
    assert version.secret_key == SecretKey(key, algorithm)
    assert version.hmac_key is None
    assert version.created_at == created_at
    assert version.created_by == created_by


def test_parse_k5_protobuf_vector_and_reencode_byte_exact() -> None:
    version = KeyVersion.parse(K5)
    assert version.secret_key == SecretKey(K5_SECRET, Algorithm.AES256)
    assert version.hmac_key == HMACKey(K5_HMAC)
    assert version.created_at == K5_CREATED
    assert version.created_at.rfc3339() == "2024-01-12T10:39:20.886816Z"
    assert version.created_by == CREATOR
    assert version.encode() == K5
    assert KeyVersion.parse(K5.decode()) == version  # str values (string backends) work too
    with pytest.raises(KeyFormatError):
        KeyVersion.parse("\ud800")


def test_k5_protobuf_wire_decoding() -> None:
    message = pb.decode_key_version(bytes.fromhex(K5_HEX))
    assert message.secret_key == pb.KeyMessage(K5_SECRET, 1)
    assert message.hmac_key == pb.KeyMessage(K5_HMAC, 1)
    assert message.created_at == (1705055960, 886816000)
    assert message.created_by == CREATOR
    assert pb.encode_key_version(message).hex() == K5_HEX


@pytest.mark.parametrize(
    "value",
    [
        b'"bytes":"%s"}' % Z32_B64.encode(),
        b'{bytes":"%s"}' % Z32_B64.encode(),
        b'{"bytes""%s"}' % Z32_B64.encode(),
        b'"bytes":"%s"' % Z32_B64.encode(),
    ],
    ids=["K6", "K7", "K8", "K9"],
)
def test_parse_rejects_invalid_json_vectors(value: bytes) -> None:
    with pytest.raises(KeyFormatError):
        KeyVersion.parse(value)


# KeyVersion.encode: S0-S2


def test_s0_encodes_byte_exact_and_decodes_to_the_same_value() -> None:
    version = KeyVersion(
        SecretKey(Z32, Algorithm.AES256),
        HMACKey(Z32),
        Timestamp.parse_rfc3339("2024-01-12T11:39:20.886816+01:00"),
        CREATOR,
    )
    assert version.encode() == S0
    assert KeyVersion.parse(S0) == version


def test_s1_encoding_without_hmac_key_fails() -> None:
    version = KeyVersion(SecretKey(Z32, Algorithm.AES256), None, K5_CREATED, CREATOR)
    with pytest.raises(ValueError):
        version.encode()


ZERO_KEYS_PREFIX = (
    "CiQKIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEAISJAogAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAQARo"
)


@pytest.mark.parametrize(
    ("created_at", "expected_suffix"),
    [
        (ZERO_TIME, "LCICSuMOY/v///wE="),  # negative seconds: 10-byte two's-complement varint
        (Timestamp(0), "A"),  # the epoch: an empty but present Timestamp
        (Timestamp(-1, 5), "NCP///////////wEQBQ=="),
    ],
)
def test_encode_matches_go_for_chacha20_empty_creator_and_edge_times(
    created_at: Timestamp, expected_suffix: str
) -> None:
    # Expected values produced by Go KES's crypto.EncodeKeyVersion.
    version = KeyVersion(SecretKey(Z32, Algorithm.CHACHA20), HMACKey(Z32), created_at, "")
    assert version.encode().decode() == ZERO_KEYS_PREFIX + expected_suffix
    assert KeyVersion.parse(version.encode()) == version


# KeyVersion.parse: Go decoding details (each checked against Go KES)


def _stored(raw: bytes) -> bytes:
    return base64.b64encode(raw)


K5_RAW = bytes.fromhex(K5_HEX)
SECRET_FIELD, HMAC_FIELD, TIME_FIELD = K5_RAW[:38], K5_RAW[38:76], K5_RAW[76:90]


def test_protobuf_edge_cases() -> None:
    no_time = KeyVersion.parse(_stored(SECRET_FIELD + HMAC_FIELD))
    assert (no_time.created_at, no_time.created_by) == (Timestamp(0), "")
    merged = KeyVersion.parse(_stored(K5_RAW + b"\x0a\x02\x10\x02"))  # sub-messages merge
    assert merged.secret_key == SecretKey(K5_SECRET, Algorithm.CHACHA20)
    unknown = b"\x28\x05" + b"\x0d\x01\x02\x03\x04" + b"\x0b\x10\x01\x0c" + b"\x08\x01"
    assert KeyVersion.parse(_stored(K5_RAW + unknown)) == KeyVersion.parse(K5)
    negative_nanos = KeyVersion.parse(_stored(K5_RAW + b"\x1a\x0b\x10" + b"\xff" * 9 + b"\x01"))
    assert negative_nanos.created_at == Timestamp(1705055959, 999_999_999)
    wide_type = KeyVersion.parse(_stored(K5_RAW + b"\x0a\x06\x10\x81\x80\x80\x80\x10"))
    assert wide_type.secret_key.algorithm is Algorithm.AES256  # uint32 keeps the low bits


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        HMAC_FIELD + TIME_FIELD,  # no secret key (Go KES panics)
        SECRET_FIELD + TIME_FIELD,  # no HMAC key
        K5_RAW + b"\x0a\x02\x10\x03",  # secret key type 3
        K5_RAW + b"\x12\x02\x10\x02",  # HMAC hash 2
        K5_RAW + b"\x0a\x03\x0a\x01\x00",  # secret key of 1 byte
        K5_RAW + b"\x22\x02\xc3\x28",  # CreatedBy not UTF-8
        K5_RAW[:-1],
        K5_RAW + b"\x0c",  # end group without start
        K5_RAW + b"\x0f",  # wire type 7
        K5_RAW + b"\x0b\x14",  # group closed by the wrong number
        K5_RAW + b"\x28" + b"\xff" * 9 + b"\x02",  # varint overflow
        b"\x08\x01" + SECRET_FIELD[2:] + HMAC_FIELD,  # field 1 with the wrong wire type
    ],
)
def test_protobuf_rejects(raw: bytes) -> None:
    with pytest.raises(KeyFormatError):
        KeyVersion.parse(_stored(raw))


@pytest.mark.parametrize(
    "value",
    [K5[:-1], K5 + b"=", b" " + K5, K5.replace(b"C", b"-", 1), b"", b"\n", b"null", b"[]", b"{}"],
)
def test_base64_and_document_level_rejects(value: bytes) -> None:
    with pytest.raises(KeyFormatError):
        KeyVersion.parse(value)


def test_base64_line_breaks_are_ignored_like_go() -> None:
    assert KeyVersion.parse(K5[:20] + b"\r\n" + K5[20:] + b"\n") == KeyVersion.parse(K5)


def _legacy(**fields: str) -> bytes:
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


@pytest.mark.parametrize(
    ("value", "algorithm", "created_at", "created_by"),
    [
        (_legacy(BYTES=f'"{Z32_B64}"', Algorithm='"ChaCha20"'), Algorithm.CHACHA20, ZERO_TIME, ""),
        (_legacy(bytes=f'"{Z32_B64}"', algorithm='""', version='"v1"', x="[1,{}]"), None, None, ""),
        (_legacy(bytes=f'"{Z32_B64}"', algorithm="null", created_at="null"), None, None, ""),
        (_legacy(bytes=f'"{Z32_B64}"', created_by='"a\\u003cb"'), None, None, "a<b"),
        (_legacy(bytes=f'"{Z32_B64}"', created_by='"\\ud800x"'), None, None, "\ufffdx"),
    ],
)
def test_legacy_json_decoding_like_go(
    value: bytes,
    algorithm: Algorithm | None,
    created_at: Timestamp | None,
    created_by: str,
) -> None:
    version = KeyVersion.parse(value)
    assert version.secret_key == SecretKey(Z32, algorithm or Algorithm.AES256)
    assert version.created_at == (created_at or ZERO_TIME)
    assert version.created_by == created_by


def test_legacy_json_invalid_utf8_becomes_replacement_characters() -> None:
    value = b'{"bytes":"%s","created_by":"a\xff\xfeb\xe2\x82c"}' % Z32_B64.encode()
    assert KeyVersion.parse(value).created_by == "a\ufffd\ufffdb\ufffd\ufffdc"


def test_legacy_json_case_folding_duplicates_and_whitespace() -> None:
    last_wins = b'{"bytes":"AAAA","BYTE\xc5\xbf":"%s"} \n' % Z32_B64.encode()  # U+017F ~ "s"
    assert KeyVersion.parse(last_wins).secret_key == SecretKey(Z32, Algorithm.AES256)


@pytest.mark.parametrize(
    "value",
    [
        _legacy(bytes=f'"{Z32_B64}"', algorithm='"undefined"'),
        _legacy(bytes=f'"{Z32_B64}"', algorithm='"aes256"'),
        _legacy(bytes=f'"{Z32_B64}"', algorithm="1"),
        _legacy(bytes=f'"{Z32_B64[:-4]}"'),
        _legacy(bytes=f'"{Z32_B64.rstrip("=")}"'),
        _legacy(bytes="null"),
        _legacy(algorithm='"AES256"'),
        _legacy(bytes=f'"{Z32_B64}"', created_at='""'),
        _legacy(bytes=f'"{Z32_B64}"', created_at='"2009-11-10"'),
        _legacy(bytes=f'"{Z32_B64}"', created_at='"2009-11-10T23:00:00\\u005a"'),  # raw is used
        _legacy(bytes=f'"{Z32_B64}"', created_by="7"),
        _legacy(bytes=f'"{Z32_B64}"', x="NaN"),
        b"\xef\xbb\xbf" + _legacy(bytes=f'"{Z32_B64}"'),
        _legacy(bytes=f'"{Z32_B64}"') + b"x",
    ],
)
def test_legacy_json_rejects(value: bytes) -> None:
    with pytest.raises(KeyFormatError):
        KeyVersion.parse(value)


def test_legacy_json_ignores_huge_numbers_like_go() -> None:
    value = _legacy(bytes=f'"{Z32_B64}"', x="9" * 5000, y="1e999")
    assert KeyVersion.parse(value).secret_key == SecretKey(Z32, Algorithm.AES256)


# generate / from_import


def test_generate() -> None:
    before = Timestamp.now()
    first, second = KeyVersion.generate("me"), KeyVersion.generate("me", Algorithm.CHACHA20)
    assert first.secret_key.algorithm is Algorithm.AES256
    assert second.secret_key.algorithm is Algorithm.CHACHA20
    assert first.created_by == "me"
    assert before <= first.created_at <= Timestamp.now()
    assert first.secret_key != KeyVersion.generate("me").secret_key
    assert first.hmac_key is not None and first.hmac_key != second.hmac_key
    assert KeyVersion.parse(first.encode()) == first
    assert KeyVersion.parse(second.encode()) == second
    assert first.secret_key.decrypt(first.secret_key.encrypt(b"dek")) == b"dek"


def test_from_import_uses_the_bytes_and_a_random_hmac_key() -> None:
    first = KeyVersion.from_import(Z32, Algorithm.CHACHA20, "admin")
    second = KeyVersion.from_import(Z32, Algorithm.CHACHA20, "admin")
    assert first.secret_key == second.secret_key == SecretKey(Z32, Algorithm.CHACHA20)
    assert first.hmac_key is not None and second.hmac_key is not None
    assert first.hmac_key.mac(b"m") != second.hmac_key.mac(b"m")
    assert first.created_by == "admin"
    with pytest.raises(ValueError):
        KeyVersion.from_import(bytes(16), Algorithm.AES256, "admin")


# Robustness


def test_parse_raises_only_key_format_error() -> None:
    rng = random.Random(480)
    seeds = [K5, S0, base64.b64encode(K5_RAW[:76]), _legacy(bytes=f'"{Z32_B64}"', x="[{}]")]
    accepted = rejected = 0
    for i in range(600):
        if i % 5 == 0:
            value = rng.randbytes(rng.randrange(200))
        else:
            data = bytearray(rng.choice(seeds))
            if i % 5 == 1:  # mutate the protobuf bytes, not their base64 text
                data = bytearray(base64.b64decode(K5))
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(len(data) + 1)
                if rng.random() < 0.5 and pos < len(data):
                    data[pos] = rng.randrange(256)
                else:
                    data.insert(pos, rng.randrange(256))
            value = base64.b64encode(data) if i % 5 == 1 else bytes(data)
        try:
            KeyVersion.parse(value)
            accepted += 1
        except KeyFormatError:
            rejected += 1
    assert accepted > 0 and rejected > 300

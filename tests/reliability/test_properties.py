"""Property tests for every parser of outside bytes: whatever arrives, each parser either
returns a value or raises its one documented error — never anything else (no 500s, no
tracebacks, no crash of a worker) — and values round-trip."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kes_flask.api.body import BodyError, bytes_field, decode_object, string_field
from kes_flask.auth.identity import APIKey, certificate_identity
from kes_flask.config import parse_config
from kes_flask.config.errors import ConfigError
from kes_flask.crypto import Algorithm, DecryptionError, KeyFormatError, KeyVersion, SecretKey
from kes_flask.server.tls import peer_of_certificate
from tests.certificates import make_certificate

# Enough examples to find the classic crashes, few enough for a loaded CI machine; no example
# database (nothing is written into the work tree).
FAST = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@FAST
@given(st.binary(max_size=2000))
def test_request_bodies_decode_or_raise_body_error(data: bytes):
    try:
        value = decode_object(data)
    except BodyError:
        return
    assert isinstance(value, dict)
    for name in ("plaintext", "context", "ciphertext"):
        try:
            bytes_field(value, name)
            string_field(value, name)
        except BodyError:
            pass


@FAST
@given(json_values, st.text(max_size=8), st.integers(min_value=0, max_value=3))
def test_json_request_bodies_keep_their_fields(value, name: str, mutation: int):
    document = {name: value, "plaintext": base64.b64encode(b"secret").decode()}
    text = json.dumps(document)
    if mutation == 1:
        text = text.upper()
    elif mutation == 2:
        text = text + " trailing"
    try:
        decoded = decode_object(text.encode())
    except BodyError:
        assert mutation == 1 or any(c in text for c in "0123456789")  # upper-cased or a number
        return
    if mutation != 1:
        assert decoded["plaintext"] == document["plaintext"]


@FAST
@given(st.binary(max_size=600))
def test_stored_keys_parse_or_raise_key_format_error(data: bytes):
    try:
        KeyVersion.parse(data)
    except KeyFormatError:
        pass


@FAST
@given(st.sampled_from(list(Algorithm)), st.text(max_size=40))
def test_stored_keys_round_trip(algorithm: Algorithm, creator: str):
    version = KeyVersion.generate(created_by=creator, algorithm=algorithm)
    parsed = KeyVersion.parse(version.encode())
    assert parsed.secret_key == version.secret_key
    assert parsed.created_by == creator


@FAST
@given(st.binary(max_size=600), st.binary(max_size=32))
def test_ciphertexts_decrypt_or_raise_decryption_error(data: bytes, context: bytes):
    key = SecretKey(b"k" * 32, Algorithm.AES256)
    try:
        key.decrypt(data, context)
    except DecryptionError:
        pass


@FAST
@given(st.binary(max_size=200), st.binary(max_size=16), st.integers(min_value=0, max_value=400))
def test_mutated_ciphertexts_are_never_accepted(plaintext: bytes, context: bytes, flip: int):
    key = SecretKey(b"k" * 32, Algorithm.CHACHA20)
    ciphertext = bytearray(key.encrypt(plaintext, context))
    assert key.decrypt(bytes(ciphertext), context) == plaintext
    ciphertext[flip % len(ciphertext)] ^= 0x01
    try:
        result = key.decrypt(bytes(ciphertext), context)
    except DecryptionError:
        return
    # a flip inside JSON whitespace or base64 padding may leave the same authentic parts
    assert result == plaintext


@FAST
@given(st.text(max_size=120))
def test_api_keys_parse_or_raise_value_error(text: str):
    try:
        APIKey.parse(text)
    except ValueError:
        pass


def test_api_keys_round_trip():
    key = APIKey.generate()
    assert APIKey.parse(str(key)).identity == key.identity


_CERT_DER = make_certificate("prop", dns=["x"])[1].public_bytes(Encoding.DER)


@FAST
@given(
    st.binary(max_size=800) | st.builds(lambda cut: _CERT_DER[:cut], st.integers(0, len(_CERT_DER)))
)
def test_der_certificates_give_an_identity_or_a_value_error(der: bytes):
    try:
        identity = certificate_identity(der)
    except ValueError:
        identity = None
    if identity is not None:
        assert len(identity) == 64
    peer_of_certificate(der)  # never raises: a broken certificate is an anonymous peer


@FAST
@given(st.integers(min_value=0, max_value=len(_CERT_DER) - 1), st.integers(1, 255))
def test_flipped_der_bytes_never_crash_the_identity_parser(index: int, xor: int):
    der = bytearray(_CERT_DER)
    der[index] ^= xor
    try:
        certificate_identity(bytes(der))
    except ValueError:
        pass


yaml_fragments = st.lists(
    st.sampled_from(
        [
            "admin:\n  identity: disabled\n",
            "tls:\n  key: k\n  cert: c\n",
            "tsl: {key: k}\n",
            "keystore:\n  fs:\n    path: /tmp/x\n",
            "keystore: {vault: {endpoint: ''}}\n",
            "policy:\n  p:\n    allow: [/v1/*]\n",
            "cache: {expiry: {any: 5x}}\n",
            "address: ':-1'\n",
            "log: {error: loud}\n",
            "keys: [{name: a}]\n",
            "api: {/v1/status: {skip_auth: maybe}}\n",
            "- a\n",
            "a: &a [*a]\n",
            "x: ${UNSET}\n",
            "\t bad indent\n",
            "version: v99\n",
            "{",
        ]
    ),
    max_size=6,
)


@FAST
@given(yaml_fragments, st.text(max_size=60))
def test_config_text_loads_or_raises_config_error(fragments: list[str], noise: str):
    for text in ("".join(fragments), "".join(fragments) + noise, noise):
        try:
            parse_config(text, {}, "config.yml")
        except ConfigError as err:
            assert "Traceback" not in str(err)
            assert str(err)


@pytest.mark.parametrize("size", [0, 1, 4299, 4301, 100_000])
def test_huge_integers_in_bodies_are_a_body_error(size: int):
    data = b'{"plaintext": ' + (b"1" * size or b"1") + b"}"
    try:
        decode_object(data)
    except BodyError as err:
        assert size > 64 and "longer than" in str(err)
    else:
        assert size <= 64

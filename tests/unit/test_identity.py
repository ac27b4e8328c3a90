"""Identities, API keys, certificates and PEM key files (api.md §6, cli.md §4.2.4)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kes_flask.auth import certs
from kes_flask.auth.identity import APIKey, certificate_identity, is_ca_certificate

DATA = Path(__file__).resolve().parent.parent / "data" / "identity"

FIRST_KEY = "kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc"
FIRST_IDENTITY = "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"

API_KEY_IDENTITIES = [
    (FIRST_KEY, FIRST_IDENTITY),
    (
        "kes:v1:ACQpoGqx3rHHjT938Hfu5hVVQJHZWSqVI2Xp1KlYxFVw",
        "0426fa9a04bc2756b92fbe8a97e1a1e07b53ecf04ed33da22c33e5c9faeb8cbb",
    ),
    (
        "kes:v1:AMxvd2uV1l5dDSRwuKZxSjuM5BDemlr+685+JAHA1TuJ",
        "ab785e3b95d80d72cc9c27cb9fde886a0bf9068a69d40e3bd08a54e68c3f2bf7",
    ),
    (
        "kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs",
        "ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6",
    ),
    (
        "kes:v1:AM0F5TP43FYEShMzA42f2drFYGnBOiNx7UH4DK0nm08E",
        "dd4f4ea7208c5bbd56ce43f9b0717100b079d835fd09db329c9d15f8e36ad544",
    ),
]

SEEDS_AND_PUBLIC_KEYS = [
    (
        FIRST_KEY,
        "3f44ec54985ab303f958e123aab9e397184fd60ec85c596fb5278c47a960345c",
        "bce7ef7e567e6487fe084ab3ee223d6ce264c9967625abfecaafa9e5be5b04b1",
    ),
    (
        "kes:v1:ACQpoGqx3rHHjT938Hfu5hVVQJHZWSqVI2Xp1KlYxFVw",
        "2429a06ab1deb1c78d3f77f077eee615554091d9592a952365e9d4a958c45570",
        "a06f6aa534af7404add2f025e748a9cf6f7abf1a7cbd458e12b37c4cd107269e",
    ),
    (
        "kes:v1:AM0F5TP43FYEShMzA42f2drFYGnBOiNx7UH4DK0nm08E",
        "cd05e533f8dc56044a1333038d9fd9dac56069c13a2371ed41f80cad279b4f04",
        "311ad2c25cb1b168f8cd71d90fba8aaffd3bcad9cccc08e8bab316fad174c315",
    ),
]

# The play.min.io certificate of api.md §6.3 (Ed25519, CN=root@play.min.io, key of FIRST_KEY).
PLAY_CERTIFICATE = DATA / "play-min-io-root.crt"


def _play_der() -> bytes:
    return x509.load_pem_x509_certificate(PLAY_CERTIFICATE.read_bytes()).public_bytes(Encoding.DER)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    private_key,
    *,
    ca: bool = False,
    extensions: list | None = None,
    subject: str = "test",
    issuer: tuple[str, object] | None = None,
) -> bytes:
    """A DER certificate for ``private_key``: self-signed, or signed by ``issuer`` (name, key)."""
    issuer_name, issuer_key = issuer or (subject, private_key)
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .public_key(private_key.public_key())
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    for extension in extensions or []:
        builder = builder.add_extension(extension, critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm).public_bytes(Encoding.DER)


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def _reencoded_spki_identity(der: bytes) -> str:
    public_key = x509.load_der_x509_certificate(der).public_key()
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return digest.finalize().hex()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- API keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "identity"), API_KEY_IDENTITIES)
def test_api_key_identity_vectors(text: str, identity: str) -> None:
    assert APIKey.parse(text).identity == identity


@pytest.mark.parametrize(("text", "seed", "public"), SEEDS_AND_PUBLIC_KEYS)
def test_api_key_seed_and_public_key(text: str, seed: str, public: str) -> None:
    key = APIKey.parse(text)
    assert key.private_key.private_bytes_raw().hex() == seed
    assert key.private_key.public_key().public_bytes_raw().hex() == public


def test_spki_of_first_api_key() -> None:
    spki = (
        APIKey.parse(FIRST_KEY)
        .private_key.public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    assert spki.hex() == (
        "302a300506032b6570032100bce7ef7e567e6487fe084ab3ee223d6ce264c9967625abfecaafa9e5be5b04b1"
    )


@pytest.mark.parametrize(
    "text",
    [
        "kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs",
        "kes:v1:AM0F5TP43FYEShMzA42f2drFYGnBOiNx7UH4DK0nm08E",
    ],
)
def test_api_key_parse_round_trip(text: str) -> None:
    assert str(APIKey.parse(text)) == text
    assert APIKey.parse(text.removeprefix("kes:v1:")) == APIKey.parse(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("v1:AM0F5TP43FYEShMzA42f2drFYGnBOiNx7UH4DK0nm08E", "illegal base64 data at input byte 2"),
        ("kes:AM0F5TP43FYEShMzA42f2drFYGnBOiNx7UH4DK0nm08E", "illegal base64 data at input byte 3"),
        (
            "kes:v1:sbDvZFqUPFFwxRS4EkuoEb2nyyInkdKSUEYHXFHeTouW",
            "kes: invalid API key: unsupported type",
        ),
        ("kes:v1:AAAA", "kes: invalid API key: invalid length"),
        ("kes:v1:", "kes: invalid API key: invalid length"),
        (
            "kes:v1:AM0F5TP43FYEShMzA42f2drFYGnBOiNx7UH4DK0nm0",
            "illegal base64 data at input byte 40",
        ),
    ],
)
def test_api_key_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        APIKey.parse(text)


def test_generated_api_key_round_trips_and_repr_hides_the_key() -> None:
    key = APIKey.generate()
    text = str(key)
    assert text.startswith("kes:v1:A") and len(text) == len("kes:v1:") + 44
    assert APIKey.parse(text).identity == key.identity
    assert repr(key) == f"APIKey(identity={key.identity})"
    assert text[7:] not in repr(key)
    assert key != APIKey.generate()


# --- certificate identities ----------------------------------------------------------------------


def test_play_certificate_identity_vector() -> None:
    assert certificate_identity(_play_der()) == FIRST_IDENTITY


def test_play_certificate_carries_the_first_api_key() -> None:
    cert = x509.load_pem_x509_certificate(PLAY_CERTIFICATE.read_bytes())
    public = cert.public_key().public_bytes_raw()
    assert public == APIKey.parse(FIRST_KEY).private_key.public_key().public_bytes_raw()


@pytest.mark.parametrize("algorithm", ["rsa2048", "p256", "p384", "ed25519"])
def test_der_walk_matches_reencoded_spki(algorithm: str, rsa_key: rsa.RSAPrivateKey) -> None:
    private_key = {
        "rsa2048": lambda: rsa_key,
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }[algorithm]()
    der = _certificate(private_key)
    assert certificate_identity(der) == _reencoded_spki_identity(der)
    assert certificate_identity(bytearray(der)) == certificate_identity(memoryview(der))


def test_der_walk_with_long_form_lengths(rsa_key: rsa.RSAPrivateKey) -> None:
    der = _certificate(rsa_key)
    assert der[1] == 0x82  # two-byte length of the certificate
    huge_value = x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"x" * 70_000
    )
    huge = _certificate(ed25519.Ed25519PrivateKey.generate(), extensions=[huge_value])
    assert huge[1] == 0x83  # three-byte length: the certificate exceeds 64 KiB
    assert certificate_identity(huge) == _reencoded_spki_identity(huge)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda der: der[:-1],  # truncated
        lambda der: der + b"\x00",  # trailing data
        lambda der: b"\x31" + der[1:],  # SET instead of SEQUENCE
        lambda der: b"\x30\x80" + der[2:],  # indefinite length
        lambda der: b"",
        lambda der: b"\x30",
    ],
)
def test_der_walk_rejects_malformed_certificates(mangle) -> None:
    with pytest.raises(ValueError):
        certificate_identity(mangle(_play_der()))


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _children(der: bytes) -> list[bytes]:
    """The complete child elements of a DER SEQUENCE (short or long-form lengths)."""
    header = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    children, pos = [], header
    while pos < len(der):
        size_header = 2 + (der[pos + 1] & 0x7F if der[pos + 1] & 0x80 else 0)
        size = (
            der[pos + 1] if size_header == 2 else int.from_bytes(der[pos + 2 : pos + size_header])
        )
        children.append(der[pos : pos + size_header + size])
        pos += size_header + size
    return children


def _without_version(der: bytes) -> bytes:
    """The certificate re-encoded without its explicit [0] version element (X.509 v1 form)."""
    tbs, signature_algorithm, signature = _children(der)
    version, *fields = _children(tbs)
    assert version[0] == 0xA0
    return _tlv(0x30, _tlv(0x30, b"".join(fields)) + signature_algorithm + signature)


def test_der_walk_without_the_optional_version() -> None:
    der = _certificate(ec.generate_private_key(ec.SECP256R1()))
    cases = [(_play_der(), FIRST_IDENTITY), (der, _reencoded_spki_identity(der))]
    for original, identity in cases:
        v1 = _without_version(original)
        assert x509.load_der_x509_certificate(v1).version == x509.Version.v1
        assert certificate_identity(v1) == identity


def test_der_walk_rejects_non_minimal_length() -> None:
    der = _play_der()
    assert der[1:4] == b"\x82\x01\x28"  # re-encode the outer length with a leading zero byte
    with pytest.raises(ValueError, match="non-minimal"):
        certificate_identity(b"\x30\x83\x00" + der[2:])
    # A long-form length for content shorter than 0x80 bytes (the 3-byte version element).
    tbs, signature_algorithm, signature = _children(der)
    version, *fields = _children(tbs)
    assert version[:2] == b"\xa0\x03"
    long_version = b"\xa0\x81\x03" + version[2:]
    tbs = _tlv(0x30, long_version + b"".join(fields))
    mangled = _tlv(0x30, tbs + signature_algorithm + signature)
    with pytest.raises(ValueError, match="non-minimal"):
        certificate_identity(mangled)


def test_ca_certificates_are_detected() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert is_ca_certificate(_certificate(key, ca=True))
    assert not is_ca_certificate(_certificate(key))  # no BasicConstraints at all
    assert not is_ca_certificate(_play_der())  # CA:FALSE


# --- certificates --------------------------------------------------------------------------------


def _extension(cert: x509.Certificate, kind):
    return cert.extensions.get_extension_for_class(kind)


def test_client_certificate_for_api_key() -> None:
    key = APIKey.parse(FIRST_KEY)
    cert = certs.client_certificate_for_api_key(key)
    cn = [x509.NameAttribute(NameOID.COMMON_NAME, FIRST_IDENTITY)]
    assert cert.subject == cert.issuer == x509.Name(cn)
    assert cert.version == x509.Version.v3
    assert cert.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.ED25519
    assert 0 < cert.serial_number < 2**128
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=90)
    assert abs(cert.not_valid_before_utc - datetime.now(timezone.utc)) < timedelta(minutes=1)
    key_usage = _extension(cert, x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature
    assert not key_usage.value.key_cert_sign and not key_usage.value.key_encipherment
    assert list(_extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    constraints = _extension(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    with pytest.raises(x509.ExtensionNotFound):
        _extension(cert, x509.SubjectAlternativeName)
    der = cert.public_bytes(Encoding.DER)
    assert certificate_identity(der) == FIRST_IDENTITY
    assert not is_ca_certificate(der)
    cert.verify_directly_issued_by(cert)
    other = certs.client_certificate_for_api_key(key)
    assert other.serial_number != cert.serial_number


def test_identity_certificate_with_subject_and_sans() -> None:
    key = APIKey.generate()
    cert = certs.identity_certificate(
        key, "localhost", ["127.0.0.1", "::1"], ["localhost", "kes.local"], timedelta(hours=8760)
    )
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(hours=8760)
    usages = list(_extension(cert, x509.ExtendedKeyUsage).value)
    assert usages == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    sans = _extension(cert, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "kes.local"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert certificate_identity(cert.public_bytes(Encoding.DER)) == key.identity


def test_identity_certificate_defaults_to_identity_as_subject() -> None:
    key = APIKey.generate()
    cert = certs.identity_certificate(key, None, [], [], timedelta(hours=720))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == key.identity
    with pytest.raises(x509.ExtensionNotFound):
        _extension(cert, x509.SubjectAlternativeName)


def test_self_signed_server_certificate() -> None:
    private_key, cert = certs.self_signed_server_certificate(["127.0.0.1", "10.0.0.7"], [])
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    assert private_key.curve.name == "secp256r1"
    assert cert.public_key() == private_key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=90)
    assert list(_extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = _extension(cert, x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "10.0.0.7"]
    cert.verify_directly_issued_by(cert)


# --- PEM -----------------------------------------------------------------------------------------


def test_private_key_pem_plain_round_trip() -> None:
    key = APIKey.generate()
    pem = certs.private_key_pem(key.private_key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n") and pem.endswith(
        b"-----END PRIVATE KEY-----\n"
    )
    loaded = certs.load_private_key_pem(pem)
    assert loaded.private_bytes_raw() == key.private_key.private_bytes_raw()
    # A password for an unencrypted key is ignored, as Go KES does.
    assert (
        certs.load_private_key_pem(pem, b"ignored").private_bytes_raw()
        == loaded.private_bytes_raw()
    )


def test_legacy_encrypted_private_key_round_trip() -> None:
    key = APIKey.generate()
    pem = certs.private_key_pem(key.private_key, b"correct horse")
    lines = pem.decode().splitlines()
    assert lines[:2] == ["-----BEGIN PRIVATE KEY-----", "Proc-Type: 4,ENCRYPTED"]
    cipher, iv = lines[2].removeprefix("DEK-Info: ").split(",")
    assert cipher == "AES-256-CBC" and len(iv) == 32 and iv == iv.lower()
    assert lines[3] == "" and lines[-1] == "-----END PRIVATE KEY-----" and pem.endswith(b"\n")
    assert len(lines[4]) == 64  # 48 bytes ciphertext (PKCS#8 Ed25519 + padding) -> 64 base64 chars
    loaded = certs.load_private_key_pem(pem, b"correct horse")
    assert loaded.private_bytes_raw() == key.private_key.private_bytes_raw()


def test_legacy_encrypted_private_key_errors() -> None:
    pem = certs.private_key_pem(APIKey.generate().private_key, b"secret")
    with pytest.raises(ValueError, match=r"^incorrect password$"):
        certs.load_private_key_pem(pem, b"wrong")
    for missing in (None, b""):
        with pytest.raises(ValueError, match=r"^private key is encrypted: password required$"):
            certs.load_private_key_pem(pem, missing)
    with pytest.raises(ValueError, match="must not be empty"):
        certs.private_key_pem(APIKey.generate().private_key, b"")


def test_traditional_encrypted_ec_key_written_by_cryptography() -> None:
    """An RFC 1423 ``EC PRIVATE KEY`` (SEC1) block not written by us, and its plaintext form."""
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = BestAvailableEncryption(b"correct_password")
    encrypted = key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, encryption)
    lines = encrypted.decode().splitlines()
    assert lines[:2] == ["-----BEGIN EC PRIVATE KEY-----", "Proc-Type: 4,ENCRYPTED"]
    assert lines[2].startswith("DEK-Info: AES-256-CBC,")
    loaded = certs.load_private_key_pem(encrypted, b"correct_password")
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert loaded.private_numbers() == key.private_numbers()
    spki = loaded.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert spki == key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match=r"^incorrect password$"):
        certs.load_private_key_pem(encrypted, b"incorrect_password")
    with pytest.raises(ValueError, match="password required"):
        certs.load_private_key_pem(encrypted)
    plaintext = key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    assert plaintext.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    plain = certs.load_private_key_pem(plaintext, b"ignored")
    assert isinstance(plain, ec.EllipticCurvePrivateKey)
    assert plain.private_numbers() == key.private_numbers()


def test_pkcs8_encrypted_private_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw"))
    assert b"ENCRYPTED PRIVATE KEY" in pem
    assert certs.load_private_key_pem(pem, b"pw").private_numbers() == key.private_numbers()
    with pytest.raises(ValueError, match=r"^incorrect password$"):
        certs.load_private_key_pem(pem, b"nope")
    with pytest.raises(ValueError, match="password required"):
        certs.load_private_key_pem(pem)


def test_first_private_key_of_a_combined_file(rsa_key: rsa.RSAPrivateKey) -> None:
    cert_pem = _pem(_certificate(ed25519.Ed25519PrivateKey.generate()))
    pkcs1 = rsa_key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    other = certs.private_key_pem(ec.generate_private_key(ec.SECP256R1()))
    loaded = certs.load_private_key_pem(cert_pem + pkcs1 + other)
    assert loaded.private_numbers() == rsa_key.private_numbers()
    with pytest.raises(ValueError, match=r"^no PEM-encoded private key found$"):
        certs.load_private_key_pem(cert_pem)
    with pytest.raises(ValueError, match=r"^failed to parse private key"):
        certs.load_private_key_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )


def test_load_certificate_chain_pem() -> None:
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = _certificate(ca_key, ca=True, subject="ca")
    leaf_key = ed25519.Ed25519PrivateKey.generate()
    leaf = _certificate(leaf_key, subject="leaf", issuer=("ca", ca_key))
    chain = _pem(leaf) + _pem(ca)
    loaded = certs.load_certificate_chain_pem(chain)
    assert [cert.public_bytes(Encoding.DER) for cert in loaded] == [leaf, ca]  # leaf first
    loaded[0].verify_directly_issued_by(loaded[1])
    with pytest.raises(certs.PemError, match=r"^no valid PEM data$"):
        certs.load_certificate_chain_pem(b"")
    sec1_key = ca_key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    with pytest.raises(certs.PemError, match=r"^unsupported PEM data block$"):
        certs.load_certificate_chain_pem(chain + sec1_key)


# --- files ---------------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_and_certificate_files_modes_and_overwrite(tmp_path: Path) -> None:
    key_path, cert_path = tmp_path / "private.key", tmp_path / "public.crt"
    certs.write_private_key_file(str(key_path), b"key-1\n", force=False)
    certs.write_certificate_file(str(cert_path), b"cert-1\n", force=False)
    assert _mode(key_path) == 0o600 and _mode(cert_path) == 0o644
    with pytest.raises(FileExistsError):
        certs.write_private_key_file(str(key_path), b"key-2\n", force=False)
    assert key_path.read_bytes() == b"key-1\n"
    certs.write_private_key_file(str(key_path), b"key-2\n", force=True)
    certs.write_certificate_file(str(cert_path), b"cert-2\n", force=True)
    assert key_path.read_bytes() == b"key-2\n" and cert_path.read_bytes() == b"cert-2\n"
    assert _mode(key_path) == 0o600 and _mode(cert_path) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["private.key", "public.crt"]  # no temporary files left


def test_key_file_mode_ignores_a_permissive_existing_file(tmp_path: Path) -> None:
    key_path = tmp_path / "private.key"
    key_path.write_bytes(b"old")
    key_path.chmod(0o666)
    certs.write_private_key_file(str(key_path), b"new", force=True)
    assert _mode(key_path) == 0o600


# --- openssl interoperability --------------------------------------------------------------------

openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


@openssl
def test_openssl_reads_our_legacy_encrypted_key(tmp_path: Path) -> None:
    key = APIKey.generate()
    path = tmp_path / "private.key"
    path.write_bytes(certs.private_key_pem(key.private_key, b"s3cret"))
    out = subprocess.run(
        ["openssl", "pkey", "-in", str(path), "-passin", "pass:s3cret", "-pubout"],
        check=True,
        capture_output=True,
    ).stdout
    assert out == key.private_key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    wrong = subprocess.run(
        ["openssl", "pkey", "-in", str(path), "-passin", "pass:wrong", "-noout"],
        capture_output=True,
    )
    assert wrong.returncode != 0


@openssl
@pytest.mark.parametrize(
    "command",
    [
        ["openssl", "ec", "-aes256"],  # EC PRIVATE KEY, DEK-Info AES-256-CBC
        ["openssl", "pkey", "-traditional", "-des3"],  # EC PRIVATE KEY, DEK-Info DES-EDE3-CBC
    ],
)
def test_we_read_openssl_legacy_encrypted_keys(tmp_path: Path, command: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    plain = key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    encrypted = subprocess.run(
        [*command, "-passout", "pass:pw"], input=plain, check=True, capture_output=True
    ).stdout
    assert b"DEK-Info: " in encrypted
    assert certs.load_private_key_pem(encrypted, b"pw").private_numbers() == key.private_numbers()

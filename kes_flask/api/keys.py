"""``/v1/key/*``: create, import, describe, delete, list, and the crypto operations."""

from __future__ import annotations

import json
import logging
import secrets
import time
from base64 import b64encode

from flask import Blueprint, Response, g, request

from kes_flask.api.body import BodyError, bytes_field, string_field
from kes_flask.api.context import runtime
from kes_flask.api.errors import (
    INVALID_BODY,
    KEY_EXISTS,
    KEY_NOT_FOUND,
    NOT_AUTHENTIC,
    KesError,
    invalid_name,
    invalid_pattern,
)
from kes_flask.api.request_body import read_object
from kes_flask.api.responses import add_route, empty_response, json_response
from kes_flask.auth.names import valid_name, valid_pattern
from kes_flask.crypto import Algorithm, DecryptionError, KeyVersion
from kes_flask.keystore.base import (
    LIST_PAGE_SIZE,
    UNLIMITED,
    InvalidKeyNameError,
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
)

bp = Blueprint("keys", __name__)
log = logging.getLogger("kes_flask.api")

KEY_SIZE = 32
LIST_RESPONSE_LIMIT = 1_000_000  # kms-go reads at most 1 MiB of a listing (api.md §3.4)


def _name(resource: str) -> str:
    if not valid_name(resource):
        raise invalid_name("key name", resource)
    return resource


def _request_attrs() -> dict[str, str]:
    return {
        "req.method": request.method,
        "req.path": request.path,
        "req.ip": request.remote_addr or "",
        "req.identity": g.get("identity") or "<unknown>",
    }


def _failure(status: int, message: str, err: Exception) -> KesError:
    """Log the detail for the operator; the client gets only the route's fixed message."""
    log.error("%s: %s", message, err, extra={"attrs": _request_attrs()})
    return KesError(status, message)


def _key(name: str) -> KeyVersion:
    try:
        return runtime().keys.get(name)
    except KeyNotFoundError:
        raise KesError.of(KEY_NOT_FOUND) from None
    except InvalidKeyNameError as err:
        raise KesError(400, str(err)) from None
    except KeystoreError as err:
        raise _failure(502, "failed to read key", err) from None


def _store(name: str, version: KeyVersion) -> None:
    try:
        runtime().keys.create(name, version)
    except KeyExistsError:
        raise KesError.of(KEY_EXISTS) from None
    except InvalidKeyNameError as err:
        raise KesError(400, str(err)) from None
    except KeystoreError as err:
        raise _failure(502, "failed to create key", err) from None


def _audit(message: str) -> None:
    runtime().audit.record(
        message,
        method=request.method,
        path=request.path,
        ip=request.remote_addr or "",
        identity=g.get("identity", ""),
        code=200,
        elapsed_ns=time.perf_counter_ns() - g.received_ns,
    )


def create(resource: str) -> Response:
    name = _name(resource)
    _store(name, KeyVersion.generate(created_by=g.identity))
    _audit(f"secret key '{name}' created")
    return empty_response()


def import_key(resource: str) -> Response:
    name = _name(resource)
    message = "invalid import key request body"
    body = read_object(g.route.max_body, message)
    try:
        key = bytes_field(body, "key")
        cipher = string_field(body, "cipher")
    except BodyError:
        raise KesError(400, message) from None
    try:
        algorithm = Algorithm.parse(cipher)
    except ValueError:
        raise KesError(406, f"algorithm '{cipher}' is not supported") from None
    if len(key) != KEY_SIZE:
        raise KesError(406, f"invalid key size for '{cipher}'")
    _store(name, KeyVersion.from_import(key, algorithm, created_by=g.identity))
    _audit(f"secret key '{name}' created")
    return empty_response()


def describe(resource: str) -> Response:
    name = _name(resource)
    version = _key(name)
    info = {
        "name": name,
        "algorithm": version.secret_key.algorithm.go_name,
        "created_at": version.created_at.rfc3339(),
    }
    if version.created_by:
        info["created_by"] = version.created_by
    return json_response(info)


def delete(resource: str) -> Response:
    name = _name(resource)
    try:
        runtime().keys.delete(name)
    except KeyNotFoundError:
        raise KesError.of(KEY_NOT_FOUND) from None
    except InvalidKeyNameError as err:
        raise KesError(400, str(err)) from None
    except KeystoreError as err:
        raise _failure(502, "failed to delete key", err) from None
    _audit(f"secret key '{name}' deleted")
    return empty_response()


def list_keys(resource: str) -> Response:
    if not valid_pattern(resource):
        raise invalid_pattern(resource)
    prefix = resource[:-1] if resource.endswith("*") else resource  # Decision Q6
    try:
        names, _ = runtime().keys.list(prefix, limit=UNLIMITED)
    except KeystoreError as err:
        raise _failure(502, "failed to list keys", err) from None
    listing: dict[str, object] = {"names": names}
    if len(json.dumps(names)) > LIST_RESPONSE_LIMIT:  # Decision Q7: one page unless too big
        listing = {"names": names[:LIST_PAGE_SIZE], "continue_at": names[LIST_PAGE_SIZE]}
    return json_response(listing)


def _crypto_request(*fields: str, optional: bool = False) -> list[bytes]:
    """The base64 ``fields`` of the body; ``optional``: an empty body means all are empty."""
    body = read_object(g.route.max_body, INVALID_BODY[1], optional=optional)
    try:
        string_field(body, "version")  # accepted and ignored, but must be a string (api.md §5.10)
        return [bytes_field(body, field) for field in fields]
    except BodyError:
        raise KesError.of(INVALID_BODY) from None


def generate(resource: str) -> Response:
    name = _name(resource)
    (context,) = _crypto_request("context", optional=True)  # generate may have no body
    version = _key(name)
    plaintext = secrets.token_bytes(KEY_SIZE)
    try:
        ciphertext = version.secret_key.encrypt(plaintext, context)
    except Exception as err:  # noqa: BLE001 - any crypto failure is the spec's 500
        raise _failure(500, "failed to generate encryption key", err) from None
    return json_response({"plaintext": _b64(plaintext), "ciphertext": _b64(ciphertext)})


def encrypt(resource: str) -> Response:
    name = _name(resource)
    plaintext, context = _crypto_request("plaintext", "context")
    version = _key(name)
    try:
        ciphertext = version.secret_key.encrypt(plaintext, context)
    except Exception as err:  # noqa: BLE001 - any crypto failure is the spec's 500
        raise _failure(500, "failed to encrypt plaintext", err) from None
    return json_response({"ciphertext": _b64(ciphertext)})


def decrypt(resource: str) -> Response:
    name = _name(resource)
    ciphertext, context = _crypto_request("ciphertext", "context")
    version = _key(name)
    try:
        plaintext = version.secret_key.decrypt(ciphertext, context)
    except DecryptionError:
        raise KesError.of(NOT_AUTHENTIC) from None
    except Exception as err:  # noqa: BLE001 - any crypto failure is the spec's 500
        raise _failure(500, "failed to decrypt ciphertext", err) from None
    return json_response({"plaintext": _b64(plaintext)})


def hmac(resource: str) -> Response:
    name = _name(resource)
    (message,) = _crypto_request("message")
    version = _key(name)
    if version.hmac_key is None:
        raise KesError(409, "key does not support HMAC")
    return json_response({"hmac": _b64(version.hmac_key.mac(message))})


def _b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


for _view in (create, import_key, describe, delete, list_keys, generate, encrypt, decrypt, hmac):
    add_route(bp, _view)

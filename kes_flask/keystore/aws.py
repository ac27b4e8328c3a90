"""AWS Secrets Manager keystore, byte-compatible with Go KES (keystores.md §5).

One secret per key, named exactly like the key, whose ``SecretString`` is the encoded key version
(the bytes Go KES writes). boto3 does the request signing, the credential chain and the retries
(its "standard" mode retries throttling, 429, 500/502/503/504 and connection errors with
exponential backoff), so nothing of that is hand-written here. boto3 is imported only when an AWS
keystore is configured: it is the optional extra ``kes-flask[aws]``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import requests

from kes_flask.config.model import AWSKeystoreConfig
from kes_flask.keystore.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeystoreError,
    KeystoreUnreachableError,
    paginate,
)
from kes_flask.keystore.extras import import_sdk

STATUS_TIMEOUT = 10.0  # seconds for the reachability probe
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
MAX_ATTEMPTS = 3  # botocore's standard mode: total attempts, jittered exponential backoff
# botocore logs request headers (the session token) and bodies (key values) at DEBUG.
QUIET_LOGGERS = ("botocore", "boto3")


def endpoint_url(endpoint: str) -> str:
    """Go KES assumes ``https://`` for an endpoint given without a scheme."""
    return endpoint if "://" in endpoint else f"https://{endpoint}"


class AWSKeystore:
    def __init__(self, config: AWSKeystoreConfig) -> None:
        boto3 = import_sdk("aws", "boto3")
        for logger in QUIET_LOGGERS:  # whatever the root level, never let those lines through
            logging.getLogger(logger).setLevel(logging.WARNING)
        botocore_config = import_sdk("aws", "botocore.config")
        self._errors = import_sdk("aws", "botocore.exceptions")
        self.endpoint = endpoint_url(config.endpoint)
        self.description = f"AWS SecretsManager: {config.endpoint}"
        self._kms_key = config.kms_key
        credentials: dict[str, str] = {}
        if config.access_key or config.secret_key or config.session_token:
            # Go KES: any of the three set means static credentials with exactly these values.
            credentials = {
                "aws_access_key_id": config.access_key,
                "aws_secret_access_key": config.secret_key,
            }
            if config.session_token:
                credentials["aws_session_token"] = config.session_token
        session = boto3.session.Session()  # a private session: never boto3's global default
        self._client = session.client(
            "secretsmanager",
            endpoint_url=self.endpoint,
            region_name=config.region,
            config=botocore_config.Config(
                retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                user_agent_extra="kes-flask",
            ),
            **credentials,
        )
        self._probe = requests.Session()

    def _call(self, operation: str, name: str, verb: str, **params: Any) -> dict[str, Any]:
        try:
            return getattr(self._client, operation)(**params)
        except self._errors.BotoCoreError as err:
            raise self._translate(err, f"failed to {verb} '{name}'") from None
        except self._errors.ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise KeyNotFoundError(name) from None
            if code == "ResourceExistsException":
                raise KeyExistsError(name) from None
            if code == "DecryptionFailure":
                raise KeystoreError(f"aws: cannot access '{name}': {err}") from None
            raise KeystoreError(f"aws: failed to {verb} '{name}': {err}") from None

    def _translate(self, err: Exception, what: str) -> KeystoreError:
        """botocore's transport errors (after its retries) mean the service is unreachable."""
        errors = self._errors
        if isinstance(err, errors.ConnectionError | errors.HTTPClientError):
            return KeystoreUnreachableError(f"aws: {what}: {err}")
        if isinstance(err, errors.NoCredentialsError):
            return KeystoreError(
                f"aws: {what}: no AWS credentials found: set "
                "keystore.aws.secretsmanager.credentials or provide them to the default chain "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, an instance role)"
            )
        return KeystoreError(f"aws: {what}: {err}")

    def create(self, name: str, value: bytes) -> None:
        params: dict[str, Any] = {"Name": name, "SecretString": value.decode("ascii")}
        if self._kms_key:
            params["KmsKeyId"] = self._kms_key
        self._call("create_secret", name, "create", **params)

    def get(self, name: str) -> bytes:
        response = self._call("get_secret_value", name, "read", SecretId=name)
        if "SecretString" in response:
            return response["SecretString"].encode()
        if "SecretBinary" in response:
            return bytes(response["SecretBinary"])
        raise KeystoreError(f"aws: failed to read '{name}': the secret has no value")

    def delete(self, name: str) -> None:
        self._call("delete_secret", name, "delete", SecretId=name, ForceDeleteWithoutRecovery=True)

    def list(self, prefix: str, limit: int = -1) -> tuple[list[str], str]:
        names: list[str] = []
        paginator = self._client.get_paginator("list_secrets")
        try:
            for page in paginator.paginate():
                names.extend(entry["Name"] for entry in page.get("SecretList", ()))
        except self._errors.ClientError as err:
            raise KeystoreError(f"aws: failed to list secrets: {err}") from None
        except self._errors.BotoCoreError as err:
            raise self._translate(err, "failed to list secrets") from None
        return paginate(names, prefix, limit)

    def status(self) -> float:
        """An unauthenticated GET of the endpoint, as Go KES does: any HTTP answer is "up"."""
        start = time.monotonic()
        try:
            # botocore trusts AWS_CA_BUNDLE when set; the probe must trust the same CAs.
            verify: bool | str = os.environ.get("AWS_CA_BUNDLE") or True
            self._probe.get(self.endpoint, timeout=STATUS_TIMEOUT, verify=verify).close()
        except requests.RequestException as err:
            raise KeystoreUnreachableError(
                f"aws: secrets manager endpoint '{self.endpoint}' is not reachable: "
                f"{type(err).__name__}"
            ) from None
        return time.monotonic() - start

    def close(self) -> None:
        self._probe.close()
        self._client.close()

"""The Secret Manager fake against the official client (google-cloud-secret-manager, REST), so it
is known to answer as the service does."""

from __future__ import annotations

import time

import pytest
import requests
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth import jwt
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.cloud import secretmanager_v1
from google.oauth2 import credentials as oauth_credentials
from google.oauth2 import service_account

from tests.backends.gcp import PROJECT, ServiceAccount
from tests.fakes.gcp_secretmanager import CLOUD_PLATFORM, FakeSecretManager, crc32c

PARENT = f"projects/{PROJECT}"


def account_credentials(account: ServiceAccount, **kwargs) -> service_account.Credentials:
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": account.private_key_id,
        "private_key": account.private_key,
        "client_email": account.client_email,
        "client_id": account.client_id,
        "token_uri": kwargs.pop("token_uri", "https://oauth2.googleapis.com/token"),
    }
    return service_account.Credentials.from_service_account_info(info, **kwargs)


def client(fake: FakeSecretManager, credentials) -> secretmanager_v1.SecretManagerServiceClient:
    return secretmanager_v1.SecretManagerServiceClient(
        credentials=credentials,
        transport="rest",
        client_options=ClientOptions(api_endpoint=fake.endpoint),
    )


def test_crc32c_matches_the_published_check_value():
    assert crc32c(b"123456789") == 0xE3069283  # CRC-32C (Castagnoli) check value


def test_secret_lifecycle_as_the_client_sees_it(gcp):
    fake, account = gcp
    sm = client(fake, account_credentials(account, scopes=[CLOUD_PLATFORM]))
    created = sm.create_secret(
        request={"parent": PARENT, "secret_id": "k1", "secret": {"replication": {"automatic": {}}}}
    )
    assert created.name == f"projects/{fake.project_number}/secrets/k1"  # the project number
    assert created.replication.automatic is not None and created.create_time
    with pytest.raises(exceptions.Conflict) as caught:
        sm.create_secret(
            request={
                "parent": PARENT,
                "secret_id": "k1",
                "secret": {"replication": {"automatic": {}}},
            }
        )
    assert caught.value.code == 409 and "already exists" in caught.value.message
    version = sm.add_secret_version(
        request={"parent": f"{PARENT}/secrets/k1", "payload": {"data": b"CiQKvalue"}}
    )
    assert version.name.endswith("/secrets/k1/versions/1")
    assert version.state == secretmanager_v1.SecretVersion.State.ENABLED
    accessed = sm.access_secret_version(request={"name": f"{PARENT}/secrets/k1/versions/1"})
    assert accessed.payload.data == b"CiQKvalue"
    assert accessed.payload.data_crc32c == crc32c(b"CiQKvalue")
    with pytest.raises(exceptions.NotFound):
        sm.access_secret_version(request={"name": f"{PARENT}/secrets/k1/versions/2"})
    assert sm.get_secret(request={"name": f"{PARENT}/secrets/k1"}).name == created.name
    versions = list(sm.list_secret_versions(request={"parent": f"{PARENT}/secrets/k1"}))
    assert [v.name.rsplit("/", 1)[1] for v in versions] == ["1"]
    sm.delete_secret(request={"name": f"{PARENT}/secrets/k1"})
    for call in (
        lambda: sm.get_secret(request={"name": f"{PARENT}/secrets/k1"}),
        lambda: sm.delete_secret(request={"name": f"{PARENT}/secrets/k1"}),
        lambda: sm.access_secret_version(request={"name": f"{PARENT}/secrets/k1/versions/1"}),
    ):
        with pytest.raises(exceptions.NotFound):
            call()


def test_invalid_ids_checksums_and_projects_are_refused(gcp):
    fake, account = gcp
    sm = client(fake, account_credentials(account, scopes=[CLOUD_PLATFORM]))
    automatic = {"replication": {"automatic": {}}}
    with pytest.raises(exceptions.BadRequest):
        sm.create_secret(request={"parent": PARENT, "secret_id": "a.b", "secret": automatic})
    with pytest.raises(exceptions.BadRequest):
        sm.create_secret(request={"parent": PARENT, "secret_id": "nope", "secret": {}})
    sm.create_secret(request={"parent": PARENT, "secret_id": "c", "secret": automatic})
    with pytest.raises(exceptions.BadRequest):
        sm.add_secret_version(
            request={"parent": f"{PARENT}/secrets/c", "payload": {"data": b"x", "data_crc32c": 1}}
        )
    with pytest.raises(exceptions.Forbidden):
        sm.get_secret(request={"name": "projects/other/secrets/c"})


def test_listing_pages_with_page_tokens(gcp):
    fake, account = gcp
    sm = client(fake, account_credentials(account, scopes=[CLOUD_PLATFORM]))
    for i in range(7):
        sm.create_secret(
            request={
                "parent": PARENT,
                "secret_id": f"s{i}",
                "secret": {"replication": {"automatic": {}}},
            }
        )
    pager = sm.list_secrets(request={"parent": PARENT, "page_size": 3})
    assert [len(page.secrets) for page in pager.pages] == [3, 3, 1]
    assert sorted(
        s.name.rsplit("/", 1)[1] for s in sm.list_secrets(request={"parent": PARENT})
    ) == [f"s{i}" for i in range(7)]
    page_requests = [p for m, p, s in fake.log if m == "GET" and p.endswith("/secrets")]
    assert len(page_requests) == 4


def test_self_signed_jwts_are_checked(gcp, tmp_path_factory):
    fake, account = gcp
    answer = requests.get(f"{fake.endpoint}/v1/{PARENT}/secrets", verify=fake.tls.ca, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert answer.json()["error"]["code"] == 401
    stranger, _ = ServiceAccount.create("stranger")
    impostor = ServiceAccount(  # the right key id and email, the wrong private key
        account.client_email, account.client_id, account.private_key_id, stranger.private_key
    )
    with pytest.raises(exceptions.Unauthorized, match="Signature"):
        list(
            client(fake, account_credentials(impostor, scopes=[CLOUD_PLATFORM])).list_secrets(
                request={"parent": PARENT}
            )
        )
    # Without scopes the client signs for the API audience instead: accepted too.
    assert (
        list(client(fake, account_credentials(account)).list_secrets(request={"parent": PARENT}))
        == []
    )


def test_token_uri_grant_checks_the_assertion(gcp):
    fake, account = gcp
    credentials = account_credentials(account, scopes=[CLOUD_PLATFORM], token_uri=fake.token_uri)
    credentials.refresh(Request())
    assert credentials.token.startswith("ya29.fake-") and fake.token_grants >= 1
    bearer = oauth_credentials.Credentials(credentials.token)
    assert list(client(fake, bearer).list_secrets(request={"parent": PARENT})) == []
    signer = account_credentials(account).signer
    now = int(time.time())
    claims = {"iss": account.client_email, "scope": CLOUD_PLATFORM, "iat": now, "exp": now + 600}
    for audience, status in ((fake.token_uri, 200), ("https://example.com/token", 400)):
        assertion = jwt.encode(signer, {**claims, "aud": audience}).decode()
        answer = requests.post(
            fake.token_uri,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
            verify=fake.tls.ca,
            timeout=10,
        )
        assert answer.status_code == status, answer.text
    assert answer.json() == {"error": "invalid_grant", "error_description": "Invalid JWT audience."}
    expired = jwt.encode(
        signer, {**claims, "aud": fake.token_uri, "iat": now - 7200, "exp": now - 3600}
    )
    answer = requests.post(
        fake.token_uri,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": expired},
        verify=fake.tls.ca,
        timeout=10,
    )
    assert answer.status_code == 400 and "expired" in answer.json()["error_description"]
    no_scope = account_credentials(
        account,
        scopes=["https://www.googleapis.com/auth/devstorage.read_only"],
        token_uri=fake.token_uri,
    )
    with pytest.raises(RefreshError, match="scope"):
        no_scope.refresh(Request())
    stranger, _ = ServiceAccount.create("stranger")
    forged = ServiceAccount(
        account.client_email, account.client_id, account.private_key_id, stranger.private_key
    )
    with pytest.raises(RefreshError, match="Signature"):
        account_credentials(forged, scopes=[CLOUD_PLATFORM], token_uri=fake.token_uri).refresh(
            Request()
        )
    fake.expire_tokens()
    while time.time() < fake.not_before:  # the token in hand was issued before the cut-off
        time.sleep(0.05)
    answer = requests.get(
        f"{fake.endpoint}/v1/{PARENT}/secrets",
        headers={"Authorization": f"Bearer {credentials.token}"},
        verify=fake.tls.ca,
        timeout=10,
    )
    assert answer.status_code == 401 and answer.json()["error"]["status"] == "UNAUTHENTICATED"


def test_expired_self_signed_tokens_are_renewed_by_the_client(gcp):
    fake, account = gcp
    sm = client(fake, account_credentials(account, scopes=[CLOUD_PLATFORM]))
    assert list(sm.list_secrets(request={"parent": PARENT})) == []
    fake.expire_tokens()
    while time.time() < fake.not_before:
        time.sleep(0.05)
    assert list(sm.list_secrets(request={"parent": PARENT})) == []
    assert [s for _, p, s in fake.log if p.endswith("/secrets")][-2:] == [401, 200]

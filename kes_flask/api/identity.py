"""``/v1/identity/*``: who is configured, and who the caller is."""

from __future__ import annotations

from flask import Blueprint, Response, g

from kes_flask.api.context import runtime
from kes_flask.api.errors import IDENTITY_NOT_FOUND, KesError, invalid_name, invalid_pattern
from kes_flask.api.responses import add_route, json_response
from kes_flask.auth.names import valid_name, valid_pattern

bp = Blueprint("identity", __name__)


def describe(resource: str) -> Response:
    if not valid_name(resource):
        raise invalid_name("identity", resource)
    rt = runtime()
    started = rt.started.rfc3339()
    if resource == rt.policies.admin:
        return json_response({"admin": True, "created_at": started})
    policy = rt.policies.policy_of(resource)
    if policy is None:
        raise KesError.of(IDENTITY_NOT_FOUND)
    return json_response(
        {"policy": policy.name, "created_at": started, "created_by": rt.policies.admin}
    )


def list_identities(resource: str) -> Response:
    if not valid_pattern(resource):
        raise invalid_pattern(resource)
    prefix = "" if resource == "*" else resource.removesuffix("*")
    identities = sorted(i for i in runtime().policies.identities() if i.startswith(prefix))
    return json_response({"identities": identities, "continue_at": ""})


def self_describe() -> Response:
    """Decision Q1: the flat shape kms-go decodes, also for identities with a policy."""
    rt = runtime()
    identity = g.identity
    started = rt.started.rfc3339()
    if identity and rt.policies.is_admin(identity):
        return json_response({"identity": identity, "admin": True, "created_at": started})
    policy = rt.policies.policy_of(identity) if identity else None
    if policy is None:
        raise KesError.of(IDENTITY_NOT_FOUND)
    body: dict[str, object] = {
        "identity": identity,
        "created_at": started,
        "created_by": rt.policies.admin,
        "policy": policy.name,
    }
    if policy.allow:
        body["allow"] = {pattern: {} for pattern in policy.allow}
    if policy.deny:
        body["deny"] = {pattern: {} for pattern in policy.deny}
    return json_response(body)


for _view in (describe, list_identities, self_describe):
    add_route(bp, _view)

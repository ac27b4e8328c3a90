"""``/v1/policy/*``: read-only views of the configured policies."""

from __future__ import annotations

from flask import Blueprint, Response

from kes_flask.api.context import runtime
from kes_flask.api.errors import POLICY_NOT_FOUND, KesError, invalid_name, invalid_pattern
from kes_flask.api.responses import add_route, json_response
from kes_flask.auth.names import valid_name, valid_pattern
from kes_flask.auth.policy import Policy

bp = Blueprint("policy", __name__)


def _policy(resource: str) -> Policy:
    if not valid_name(resource):
        raise invalid_name("policy name", resource)
    policy = runtime().policies.policies.get(resource)
    if policy is None:
        raise KesError.of(POLICY_NOT_FOUND)
    return policy


def describe(resource: str) -> Response:
    policy = _policy(resource)
    rt = runtime()
    return json_response(
        {"name": policy.name, "created_at": rt.started.rfc3339(), "created_by": rt.policies.admin}
    )


def read(resource: str) -> Response:
    policy = _policy(resource)
    rt = runtime()
    body: dict[str, object] = {"name": policy.name}
    if policy.allow:
        body["allow"] = {pattern: {} for pattern in policy.allow}
    if policy.deny:
        body["deny"] = {pattern: {} for pattern in policy.deny}
    body["created_at"] = rt.started.rfc3339()
    body["created_by"] = rt.policies.admin
    return json_response(body)


def list_policies(resource: str) -> Response:
    if not valid_pattern(resource):
        raise invalid_pattern(resource)
    prefix = "" if resource == "*" else resource.removesuffix("*")
    names = sorted(n for n in runtime().policies.policies if n.startswith(prefix))
    return json_response({"names": names, "continue_at": ""})


for _view in (describe, read, list_policies):
    add_route(bp, _view)

"""Which API paths an identity may call, and why — for ``doctor``, never on the request path.

The answer uses the same :class:`PolicySet` decision the server makes; this module only adds
the reason (admin, the deny rule that shadows an allow, or no matching allow rule) and the YAML
line that would change the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from kes_flask.auth.policy import PatternSet, PolicySet


@dataclass(frozen=True)
class MinioPath:
    path: str  # the request path MinIO sends
    rule: str  # the policy rule an operator writes for it
    purpose: str
    required: bool  # MinIO does not work without it (spec minio.md §7)


def minio_paths(key_name: str) -> list[MinioPath]:
    """What current MinIO calls for its default key ``key_name`` (spec minio.md §7)."""
    return [
        MinioPath(
            f"/v1/key/create/{key_name}",
            f"/v1/key/create/{key_name}",
            "creating the key at first start",
            True,
        ),
        MinioPath(
            f"/v1/key/generate/{key_name}",
            f"/v1/key/generate/{key_name}",
            "SSE writes, IAM and config saves",
            True,
        ),
        MinioPath(
            f"/v1/key/decrypt/{key_name}",
            f"/v1/key/decrypt/{key_name}",
            "reads, listings, IAM and config loads",
            True,
        ),
        MinioPath(
            f"/v1/key/describe/{key_name}",
            f"/v1/key/describe/{key_name}",
            "the warm-up loop",
            False,
        ),
        MinioPath("/v1/key/list/", "/v1/key/list/*", "mc admin kms key list", False),
        MinioPath("/v1/status", "/v1/status", "mc admin info and the KMS status API", False),
    ]


@dataclass(frozen=True)
class Decision:
    path: str
    allowed: bool
    reason: str
    deny_rule: str = ""  # the deny pattern that matched, if any


def _first_match(patterns: tuple[str, ...], path: str) -> str:
    for pattern in patterns:
        if PatternSet.compile([pattern]).matches(path):
            return pattern
    return ""


def explain(policies: PolicySet, identity: str, path: str) -> Decision:
    """The server's decision for ``identity`` calling ``path``, with its reason."""
    allowed = policies.authorize(identity, path)
    if policies.is_admin(identity):
        return Decision(path, allowed, "the admin identity may call every API")
    policy = policies.policy_of(identity)
    if policy is None:
        return Decision(path, allowed, "the identity is assigned to no policy")
    deny = _first_match(policy.deny, path)
    if deny:
        return Decision(
            path, allowed, f"denied by the deny rule '{deny}' of policy '{policy.name}'", deny
        )
    allow = _first_match(policy.allow, path)
    if allow:
        return Decision(path, allowed, f"allowed by the rule '{allow}' of policy '{policy.name}'")
    return Decision(path, allowed, f"no allow rule of policy '{policy.name}' matches")


def suggested_rule(policies: PolicySet, identity: str, needed: MinioPath, key_name: str) -> str:
    """The allow rule to add for ``needed``, in the shape the policy already uses for keys.

    A policy that grants ``/v1/key/generate/minio-*`` gets ``/v1/key/decrypt/minio-*``
    suggested, not the single key name, so the fix covers MinIO's other keys too.
    """
    policy = policies.policy_of(identity)
    prefix = "/v1/key/"
    if policy is None or not needed.rule.startswith(prefix) or not needed.rule.endswith(key_name):
        return needed.rule
    operation = needed.rule[len(prefix) :].split("/", 1)[0]
    for rule in policy.allow:
        if not rule.startswith(prefix) or "/" not in rule[len(prefix) :]:
            continue
        other, target = rule[len(prefix) :].split("/", 1)
        if other != operation and target.endswith("*") and key_name.startswith(target[:-1]):
            return f"{prefix}{operation}/{target}"
    return needed.rule

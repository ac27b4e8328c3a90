"""Authorization: per-identity allow/deny path patterns (api.md §7).

Patterns are compiled once per configuration into an exact-match set and a tuple of prefixes,
so a check is two C-level lookups per list — it runs on every request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kes_flask.auth.names import valid_name
from kes_flask.config.errors import ConfigError
from kes_flask.config.model import PolicyConfig, ServerConfig


@dataclass(frozen=True)
class PatternSet:
    exact: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def compile(cls, patterns: Iterable[str]) -> PatternSet:
        exact, prefixes = set(), []
        for pattern in patterns:
            if pattern.endswith("*"):
                prefixes.append(pattern[:-1])  # a trailing "*" matches any rest, "/" included
            elif pattern:
                exact.add(pattern)  # "" never matches; "*" elsewhere is a literal character
        return cls(frozenset(exact), tuple(prefixes))

    def matches(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes)


@dataclass(frozen=True)
class Policy:
    name: str
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    _allow: PatternSet = field(repr=False, compare=False)
    _deny: PatternSet = field(repr=False, compare=False)

    @classmethod
    def from_config(cls, config: PolicyConfig) -> Policy:
        return cls(
            config.name,
            config.allow,
            config.deny,
            PatternSet.compile(config.allow),
            PatternSet.compile(config.deny),
        )

    def allows(self, path: str) -> bool:
        """Deny wins; otherwise any allow pattern must match (an empty policy denies all)."""
        return not self._deny.matches(path) and self._allow.matches(path)


class PolicySet:
    """The admin identity, every policy and the identity → policy assignment."""

    def __init__(self, admin: str, policies: Iterable[Policy], assignment: dict[str, Policy]):
        self.admin = admin
        self.policies = {p.name: p for p in policies}
        self.assignment = assignment

    @classmethod
    def from_config(cls, config: ServerConfig) -> PolicySet:
        """Build it and check config.md §4.6's start-time rules (names, one policy each)."""
        policies, assignment = [], {}
        for policy_config in config.policies:
            if not valid_name(policy_config.name):
                raise ConfigError(
                    f"kes: policy name '{policy_config.name}' is empty, too long or contains "
                    "invalid characters"
                )
            policy = Policy.from_config(policy_config)
            policies.append(policy)
            for identity in policy_config.identities:
                if not valid_name(identity):
                    raise ConfigError(
                        f"kes: identity '{identity}' is empty, too long or contains "
                        "invalid characters"
                    )
                if identity in assignment:
                    raise ConfigError(
                        f"kes: cannot assign policy '{policy.name}' to '{identity}': "
                        "identity already has a policy"
                    )
                assignment[identity] = policy
        return cls(config.admin_identity, policies, assignment)

    def is_admin(self, identity: str) -> bool:
        return bool(identity) and identity == self.admin

    def authorize(self, identity: str, path: str) -> bool:
        """Admin bypass, then the identity's policy; no policy means no access."""
        if identity and identity == self.admin:
            return True
        policy = self.assignment.get(identity)
        return policy is not None and policy.allows(path)

    def policy_of(self, identity: str) -> Policy | None:
        return self.assignment.get(identity)

    def identities(self) -> list[str]:
        """Every identity the server knows: the admin string (even "disabled") and assignees."""
        return [self.admin, *self.assignment] if self.admin else list(self.assignment)

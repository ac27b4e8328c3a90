"""Marshmallow fields that turn YAML tree nodes (``yamltree``) into typed config values.

Each field implements one row of config.md §1.2 (how a scalar becomes a value) and, when its
metadata says ``env``, the ``${VAR}`` substitution of §3. Errors are ``Problem`` strings that
carry the YAML line, so the loader can print ``<source>: line N: <field>: <problem>``.
Documentation metadata (``description``, ``env``, ``default``, ``secret``) lives on every field
so the config reference can be generated from the schema.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields

from .duration import parse_duration
from .levels import go_quote
from .yamltree import EnvVarNotFound, Scalar, YamlMap, YamlNode, YamlSeq, describe

TRUE_WORDS = frozenset({"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"})
FALSE_WORDS = frozenset({"n", "N", "no", "No", "NO", "off", "Off", "OFF"})
_CORE_TRUE = frozenset({"true", "True", "TRUE"})
_CORE_FALSE = frozenset({"false", "False", "FALSE"})


class Problem(str):
    """An error message that remembers the 1-based YAML line it is about."""

    line: int

    def __new__(cls, message: str, line: int) -> Problem:
        problem = super().__new__(cls, message)
        problem.line = line
        return problem


class EnvProblem(Problem):
    """An unset ``${VAR}``; its text is the exact upstream message, printed without a prefix."""


def _metadata(
    description: str, *, env: bool, default: Any, secret: bool, extra: dict[str, Any]
) -> dict[str, Any]:
    return {"description": description, "env": env, "default": default, "secret": secret, **extra}


def _fail(node: YamlNode, message: str) -> ValidationError:
    return ValidationError(Problem(message, node.line))


def _expect_mapping(node: YamlNode, what: str = "a mapping") -> ValidationError:
    return _fail(node, f"expected {what}, found {describe(node)}")


class YamlField(fields.Field):
    """Base for leaf fields: a scalar in, optional ``${VAR}`` expansion, a typed value out."""

    type_name = "string"

    def __init__(
        self,
        description: str,
        *,
        env: bool = True,
        default: Any = "",
        secret: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(
            load_default=self.empty_value,
            metadata=_metadata(description, env=env, default=default, secret=secret, extra=extra),
        )

    def empty_value(self) -> Any:
        """The value of a missing key or YAML null."""
        return ""

    def scalar(self, node: YamlNode, expected: str | None = None) -> Scalar:
        if not isinstance(node, Scalar):
            raise _fail(node, f"expected {expected or self.expected()}, found {describe(node)}")
        if not self.metadata.get("env"):
            return node
        try:
            return node.expand_env()
        except EnvVarNotFound as err:
            raise ValidationError(EnvProblem(str(err), node.line)) from None

    def expected(self) -> str:
        return "a " + self.type_name


class String(YamlField):
    """Any scalar, as its raw text (``0123``, ``on``, ``1.0`` stay as written); null is ""."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        scalar = self.scalar(value)
        return "" if scalar.is_null else scalar.text


class Duration(YamlField):
    """A Go duration string (``5m``, ``1h30m``); plain YAML numbers are rejected like upstream."""

    type_name = "duration"

    def empty_value(self) -> int | None:
        return None  # not set: the consumer applies its default

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int | None:
        scalar = self.scalar(value)
        kind = scalar.kind
        if kind == "null":
            return None
        if kind == "bool":
            raise _fail(scalar, f'expected a duration such as "5m", found boolean {scalar.text}')
        if kind in ("int", "float"):
            noun = "integer" if kind == "int" else "number"
            raise _fail(
                scalar,
                f"cannot parse {noun} {scalar.text} as a duration: durations need a unit, "
                f'e.g. "5m" or "30s"',
            )
        try:
            return parse_duration(scalar.text)
        except ValueError as err:
            raise _fail(
                scalar,
                f"cannot parse {go_quote(scalar.text)} as a duration ({err}); "
                'use a number with a unit ns, us, ms, s, m or h, e.g. "30s" or "1h30m"',
            ) from None


class Boolean(YamlField):
    """``api.<path>.skip_auth``: YAML 1.2 booleans plus yaml.v3's y/yes/on and n/no/off words."""

    type_name = "boolean"

    def empty_value(self) -> bool:
        return False

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        scalar = self.scalar(value)
        text = scalar.text
        if scalar.kind == "null":
            return False
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        typed = scalar.kind == "bool" or scalar.style == "env"  # env: Decision config.md §2.3
        if typed and text.lower() == "true":
            return True
        if typed and text.lower() == "false":
            return False
        if text in _CORE_TRUE or text in _CORE_FALSE:
            quoted = go_quote(text)
            raise _fail(scalar, f"cannot parse quoted {quoted} as a boolean: write {text} unquoted")
        raise _fail(scalar, f"cannot parse {go_quote(text)} as a boolean (use true or false)")


class OptionalBoolean(Boolean):
    """A boolean that may stay unset (``None``): kes-flask's own ``mlock``."""

    def empty_value(self) -> bool | None:  # type: ignore[override]
        return None

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool | None:  # type: ignore[override]
        if isinstance(value, Scalar) and value.kind == "null":
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class StringList(YamlField):
    """A YAML list of scalars (each taken as raw text); null is an empty list."""

    type_name = "list of strings"

    def __init__(self, description: str, *, env: bool = True, **extra: Any) -> None:
        super().__init__(description, env=env, default=[], **extra)

    def empty_value(self) -> tuple[str, ...]:
        return ()

    def expected(self) -> str:
        return "a list of strings"

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> tuple[str, ...]:
        if isinstance(value, Scalar) and value.is_null:
            return ()
        if not isinstance(value, YamlSeq):
            raise _fail(value, f"expected a list of strings, found {describe(value)}")
        items: list[str] = []
        errors: dict[int, list[str]] = {}
        for index, item in enumerate(value):
            try:
                scalar = self.scalar(item, "a string")
            except ValidationError as err:
                errors[index] = err.messages  # type: ignore[assignment]
                continue
            items.append("" if scalar.is_null else scalar.text)
        if errors:
            raise ValidationError(errors)
        return tuple(items)


def _empty_map() -> YamlMap:
    return YamlMap(0)


class Section(fields.Nested):
    """A nested mapping section.

    ``presence=True`` marks sections whose mere presence matters (keystore backends, Vault auth
    methods, Azure credential kinds): missing or null loads as ``None`` and ``{}`` as a section
    of defaults (config.md §4.9). Other sections load missing/null as all defaults.
    """

    def __init__(
        self, nested: type[Schema], description: str, *, presence: bool = False, **extra: Any
    ) -> None:
        super().__init__(
            nested,
            load_default=None if presence else self.defaults,
            metadata=_metadata(
                description,
                env=False,
                default=None,
                secret=False,
                extra={"presence": presence, **extra},
            ),
        )

    def defaults(self) -> dict[str, Any]:
        return self.schema.load(_empty_map())

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, Scalar) and value.is_null:
            return None if self.metadata["presence"] else self.defaults()
        if not isinstance(value, YamlMap):
            raise _expect_mapping(value)
        return super()._deserialize(value, attr, data, **kwargs)


class _SectionCollection(fields.Field):
    """Shared parts of NamedSections / SectionList: one nested schema applied per item."""

    def __init__(self, nested: type[Schema], description: str, **extra: Any) -> None:
        super().__init__(
            load_default=self.empty_value,
            metadata=_metadata(description, env=False, default=None, secret=False, extra=extra),
        )
        self.nested = nested

    @property
    def schema(self) -> Schema:
        return self.nested()

    def empty_value(self) -> Any:
        raise NotImplementedError

    def load_item(self, schema: Schema, item: YamlNode) -> dict[str, Any]:
        if isinstance(item, Scalar) and item.is_null:
            return schema.load(_empty_map())
        if not isinstance(item, YamlMap):
            raise _expect_mapping(item)
        return schema.load(item)


class NamedSections(_SectionCollection):
    """A mapping of names (policy names, API paths; never env-expanded) to nested sections."""

    def empty_value(self) -> dict[str, Any]:
        return {}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, Scalar) and value.is_null:
            return {}
        if not isinstance(value, YamlMap):
            raise _expect_mapping(value)
        schema = self.schema
        result: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for name, item in value.items():
            try:
                result[name] = self.load_item(schema, item)
            except ValidationError as err:
                errors[name] = err.messages
        if errors:
            raise ValidationError(errors, valid_data=result)
        return result


class SectionList(_SectionCollection):
    """A YAML list of nested sections (``keys``)."""

    def empty_value(self) -> list[Any]:
        return []

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, Scalar) and value.is_null:
            return []
        if not isinstance(value, YamlSeq):
            raise _fail(value, f"expected a list, found {describe(value)}")
        schema = self.schema
        result: list[Any] = []
        errors: dict[int, Any] = {}
        for index, item in enumerate(value):
            try:
                result.append(self.load_item(schema, item))
            except ValidationError as err:
                errors[index] = err.messages
        if errors:
            raise ValidationError(errors, valid_data=result)
        return result

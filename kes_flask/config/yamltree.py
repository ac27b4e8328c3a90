"""Read a YAML config into a small tree that keeps every scalar's raw text, style and line.

PyYAML's ready-made loaders implement YAML 1.1 (``on`` becomes True, ``0777`` an octal int,
duplicate keys silently win). Go KES uses yaml.v3 (YAML 1.2 core schema, duplicate keys are an
error), so this module composes nodes with *no* implicit type resolution and leaves the typing to
the per-field conversion (config.md §1.2). It also expands aliases and ``<<`` merge keys under a
node budget so that an "alias bomb" becomes a ConfigError instead of eating the machine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from .errors import ConfigError

MAX_NODES = 100_000  # nodes after alias/merge expansion; real configs have a few hundred
MAX_DEPTH = 64  # nesting levels; the deepest real config section is about 6

_TAG_PREFIX = "tag:yaml.org,2002:"
_PLAIN = "tag:kes-flask:plain"  # marker: plain scalar without a tag, to be typed by the schema
_STR = _TAG_PREFIX + "str"

_CORE_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_CORE_BOOL = frozenset({"true", "True", "TRUE", "false", "False", "FALSE"})
_CORE_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)


class YamlSyntaxError(ConfigError):
    """The text is not a YAML mapping (syntax error, or another top-level type)."""


class EnvVarNotFound(ConfigError):
    """A ``${NAME}`` reference to an unset environment variable (exact upstream message)."""

    def __init__(self, name: str, line: int) -> None:
        super().__init__(f"kesconf: referenced env. variable '{name}' in line '{line}' not found")
        self.name = name
        self.line = line


@dataclass(frozen=True)
class Scalar:
    """One YAML scalar as written. ``style``: plain, quoted, block, or env (from ``${VAR}``)."""

    text: str
    line: int
    style: str = "plain"
    tag: str = ""  # explicit tag in short form ("!!int", "!custom"); "" when none was written
    environ: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def kind(self) -> str:
        """YAML 1.2 core-schema type: ``null``, ``bool``, ``int``, ``float`` or ``str``."""
        if self.tag:
            short = self.tag[2:] if self.tag.startswith("!!") else ""
            return short if short in ("null", "bool", "int", "float") else "str"
        if self.style != "plain":
            return "str"
        if self.text in _CORE_NULL:
            return "null"
        if self.text in _CORE_BOOL:
            return "bool"
        if _CORE_INT.fullmatch(self.text):
            return "int"
        if _CORE_FLOAT.fullmatch(self.text):
            return "float"
        return "str"

    @property
    def is_null(self) -> bool:
        return self.kind == "null"

    def env_reference(self) -> str | None:
        """The variable name if the whole (trimmed) value is ``${NAME}`` (config.md §3.2)."""
        value = self.text.strip()
        if value.startswith("${") and value.endswith("}") and len(value) >= 3:
            return value[2:-1].strip()
        return None

    def expand_env(self) -> Scalar:
        """Substitute a whole-value ``${NAME}``; the result is a plain string, never re-parsed."""
        name = self.env_reference()
        if name is None:
            return self
        if name not in self.environ:
            raise EnvVarNotFound(name, self.line)
        return Scalar(self.environ[name], self.line, "env", "", self.environ)


class YamlMap(dict):
    """A mapping in file order; ``line`` of the mapping and ``key_lines`` of each key."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}


class YamlSeq(list):
    """A sequence with the ``line`` it starts on."""

    def __init__(self, line: int, items: list | None = None) -> None:
        super().__init__(items or [])
        self.line = line


YamlNode = Scalar | YamlMap | YamlSeq


@dataclass(frozen=True)
class DuplicateKey:
    key: str
    line: int
    first_line: int

    def message(self, source: str) -> str:
        return (
            f"{source}: line {self.line}: duplicate key '{self.key}' "
            f"(already defined at line {self.first_line})"
        )


@dataclass(frozen=True)
class Document:
    root: YamlMap
    duplicates: tuple[DuplicateKey, ...]


def describe(node: YamlNode) -> str:
    """Short human description of a node for error messages (never the value of a secret)."""
    if isinstance(node, YamlMap):
        return "a mapping"
    if isinstance(node, YamlSeq):
        return "a list"
    return {"null": "null", "bool": "a boolean", "int": "an integer", "float": "a number"}.get(
        node.kind, "a string"
    )


class _RawComposer(Composer):
    """Composer that tags plain scalars with a marker, allows anchor redefinition (YAML 1.2,
    yaml.v3) and bounds nesting depth before Python's recursion limit is reached."""

    def compose_node(self, parent, index):
        if not self.check_event(AliasEvent):
            anchor = self.peek_event().anchor
            if anchor is not None:
                self.anchors.pop(anchor, None)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                message = f"nesting deeper than {MAX_DEPTH} levels"
                raise yaml.composer.ComposerError(None, None, message, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_scalar_node(self, anchor):
        event = self.get_event()
        if event.tag is None:
            tag = _PLAIN if event.implicit[0] else _STR
        elif event.tag == "!":
            tag = _STR  # the non-specific tag forces a string
        else:
            tag = event.tag
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        if anchor is not None:
            self.anchors[anchor] = node
        return node


class _RawLoader(Reader, Scanner, Parser, _RawComposer, BaseResolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _RawComposer.__init__(self)
        BaseResolver.__init__(self)
        self._depth = 0


def _short_tag(tag: str) -> str:
    if tag in (_PLAIN, _STR):
        return ""
    return "!!" + tag[len(_TAG_PREFIX) :] if tag.startswith(_TAG_PREFIX) else tag


class _TreeBuilder:
    """Turns composed nodes into YamlNodes, expanding aliases and merge keys under a budget."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.nodes = 0
        self.duplicates: dict[tuple[str, int, int], DuplicateKey] = {}

    def build(self, node: Node, depth: int = 0) -> YamlNode:
        self.nodes += 1
        line = node.start_mark.line + 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            limit = f"more than {MAX_NODES} nodes" if self.nodes > MAX_NODES else "too deep"
            raise ConfigError(
                f"{self.source}: line {line}: the document is {limit} after expanding "
                "anchors and aliases; refusing to load it"
            )
        if isinstance(node, ScalarNode):
            if node.tag == _PLAIN:
                style, tag = "plain", ""
            else:
                style = "block" if node.style in ("|", ">") else "quoted" if node.style else "plain"
                tag = _short_tag(node.tag) or ("!!str" if style == "plain" else "")
            return Scalar(node.value, line, style, tag, self.environ)
        if isinstance(node, SequenceNode):
            return YamlSeq(line, [self.build(item, depth + 1) for item in node.value])
        return self._mapping(node, line, depth)

    def _mapping(self, node: MappingNode, line: int, depth: int) -> YamlMap:
        result = YamlMap(line)
        merges: list[tuple[int, Node]] = []
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                raise ConfigError(
                    f"{self.source}: line {key_line}: mapping keys must be plain strings, "
                    "not lists or mappings"
                )
            key = key_node.value
            first = merges[0][0] if key == "<<" and merges else result.key_lines.get(key)
            if first is not None:
                self.duplicates[(key, key_line, first)] = DuplicateKey(key, key_line, first)
                continue
            if key == "<<" and key_node.tag in (_PLAIN, _TAG_PREFIX + "merge"):
                merges.append((key_line, value_node))
                continue
            result.key_lines[key] = key_line
            result[key] = self.build(value_node, depth + 1)
        for merge_line, merge_node in merges:
            self._merge_into(result, merge_node, merge_line, depth)
        return result

    def _merge_into(self, result: YamlMap, merge_node: Node, line: int, depth: int) -> None:
        """``<<``: keys written in the mapping win; among merged mappings, the first wins."""
        sources = merge_node.value if isinstance(merge_node, SequenceNode) else [merge_node]
        for source_node in sources:
            merged = self.build(source_node, depth + 1)
            if not isinstance(merged, YamlMap):
                raise ConfigError(
                    f"{self.source}: line {line}: the merge key '<<' needs a mapping or a list "
                    "of mappings"
                )
            for key, value in merged.items():
                if key not in result:
                    result[key] = value
                    result.key_lines[key] = merged.key_lines[key]


def _syntax_error(source: str, err: yaml.YAMLError, text: str) -> YamlSyntaxError:
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = err.problem or err.context or "invalid YAML"
        if err.context and err.problem and err.context_mark:
            what = f"{what} ({err.context} at line {err.context_mark.line + 1})"
        return YamlSyntaxError(f"{source}: {where}invalid YAML: {what}")
    if isinstance(err, yaml.reader.ReaderError):
        line = text[: err.position].count("\n") + 1
        char = err.character if isinstance(err.character, int) else ord(str(err.character)[:1])
        return YamlSyntaxError(
            f"{source}: line {line}: invalid YAML: character #x{char:04x} is not allowed "
            "(control characters and binary data cannot appear in a YAML file)"
        )
    return YamlSyntaxError(f"{source}: invalid YAML: {err}")


def _compose_first(text: str, source: str) -> Node:
    loader = _RawLoader(text)
    try:
        if not loader.check_node():
            raise ConfigError(f"{source}: the config file is empty (no YAML document)")
        return loader.get_node()
    finally:
        loader.dispose()


def read_document(text: str, source: str, environ: Mapping[str, str]) -> Document:
    """Compose the first YAML document of ``text`` into a tree (config.md §1.1).

    Raises YamlSyntaxError for syntax errors and non-mapping documents, ConfigError for an empty
    stream or an oversized expansion. Duplicate keys are returned, not raised, because the
    ``version`` check has to come first (config.md §5).
    """
    try:
        node = _compose_first(text, source)
    except yaml.YAMLError as err:
        raise _syntax_error(source, err, text) from None
    except RecursionError:
        raise YamlSyntaxError(f"{source}: invalid YAML: nesting is too deep") from None
    builder = _TreeBuilder(source, environ)
    root = builder.build(node)
    if isinstance(root, Scalar) and root.is_null:
        root = YamlMap(root.line)  # a document holding only null decodes to all defaults
    if not isinstance(root, YamlMap):
        raise YamlSyntaxError(
            f"{source}: line {root.line}: the config must be a YAML mapping of keys to values, "
            f"found {describe(root)}"
        )
    duplicates = sorted(builder.duplicates.values(), key=lambda d: (d.line, d.first_line))
    return Document(root, tuple(duplicates))

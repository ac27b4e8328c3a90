"""Load a YAML config file into a validated ``ServerConfig`` (config.md §1 to §5).

Pipeline, in Go KES's order so the same file fails with the same first error:
YAML syntax → ``version`` on the raw tree → duplicate keys → typed decode with ``${VAR}``
expansion (marshmallow schemas) → semantic checks (``validate``). Every failure is a ConfigError.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator, Mapping
from typing import Any

from marshmallow import ValidationError

from .errors import ConfigError
from .fields import EnvProblem, Problem
from .legacy import looks_like_toml, toml_message
from .model import ServerConfig
from .schema import ConfigFileSchema
from .unknown import unknown_key_warnings
from .validate import build_config
from .yamltree import Document, Scalar, YamlMap, YamlSyntaxError, read_document

MAX_REPORTED_ERRORS = 10


def _flatten(messages: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(dotted path, message)`` from marshmallow's nested error structure."""
    if isinstance(messages, dict):
        for key, sub in messages.items():
            if isinstance(key, int):
                sub_path = f"{path}[{key}]"
            elif key == "_schema":
                sub_path = path
            else:
                sub_path = f"{path}.{key}" if path else str(key)
            yield from _flatten(sub, sub_path)
    elif isinstance(messages, list):
        for message in messages:
            yield from _flatten(message, path)
    else:
        yield path, messages


def _type_error(messages: Any, source: str) -> ConfigError:
    problems = list(_flatten(messages))
    env_problems = [p for _, p in problems if isinstance(p, EnvProblem)]
    if env_problems:  # upstream aborts decoding at the first unset variable
        return ConfigError(str(min(env_problems, key=lambda p: p.line)))
    problems.sort(key=lambda item: getattr(item[1], "line", 0))
    lines = [
        f"{source}: line {problem.line}: {path}: {problem}"
        if isinstance(problem, Problem)
        else f"{source}: {path}: {problem}"
        for path, problem in problems[:MAX_REPORTED_ERRORS]
    ]
    if len(problems) > MAX_REPORTED_ERRORS:
        lines.append(f"{source}: … and {len(problems) - MAX_REPORTED_ERRORS} more errors")
    return ConfigError("\n".join(lines))


def _check_version(root: YamlMap) -> None:
    """config.md §1.3: raw text check on the top-level ``version`` key only, before decoding."""
    node = root.get("version")
    if node is None:
        return
    if not isinstance(node, Scalar):
        raise ConfigError(f"kesconf: invalid config version at line '{node.line}'")
    if node.text not in ("", "v1"):
        raise ConfigError(f"edge: invalid server config version '{node.text}'")


def _legacy_keystore_warning(root: YamlMap, data: dict[str, Any], source: str) -> list[str]:
    if data["keystore"]["kes"] is None:
        return []
    keystore = root["keystore"]
    line = keystore.key_lines["kes"] if isinstance(keystore, YamlMap) else 0
    return [f"{source}: line {line}: keystore.kes is left over from old KES versions and ignored"]


def _read(text: str, source: str, environ: Mapping[str, str]) -> Document:
    try:
        return read_document(text, source, environ)
    except YamlSyntaxError:
        if looks_like_toml(text, source):
            raise ConfigError(toml_message(source)) from None
        raise


def _parse(text: str, environ: Mapping[str, str], source: str) -> ServerConfig:
    document = _read(text, source, environ)
    _check_version(document.root)
    if document.duplicates:
        raise ConfigError("\n".join(d.message(source) for d in document.duplicates[:10]))
    schema = ConfigFileSchema()
    unknown = unknown_key_warnings(schema, document.root, source)
    try:
        try:
            data = schema.load(document.root)
        except ValidationError as err:
            raise _type_error(err.messages, source) from None
        warnings = unknown + _legacy_keystore_warning(document.root, data, source)
        return build_config(
            data, source=source, has_root_key="root" in document.root, warnings=warnings
        )
    except ConfigError as err:
        if not unknown or "\nhint:" in str(err):
            raise  # no unknown key, or the error already names the renamed key
        # A misspelt key ('tsl:' for 'tls:') is often the cause of the error: say both at once.
        notes = "\n".join(f"note: {warning}" for warning in unknown)
        raise ConfigError(f"{err}\n{notes}") from None


def parse_config(
    text: str, environ: Mapping[str, str] | None = None, source: str = "<config>"
) -> ServerConfig:
    """Parse config text; ``environ`` (default ``os.environ``) resolves ``${VAR}`` references.

    ``source`` names the file in messages. Raises ConfigError and nothing else.
    """
    env = os.environ if environ is None else environ
    try:
        return _parse(text, env, source)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError(f"{source}: the document is nested too deeply") from None
    except Exception as err:  # contract: callers only ever see ConfigError
        raise ConfigError(f"{source}: cannot load config: {type(err).__name__}: {err}") from err


def _decode(raw: bytes, path: str) -> str:
    """YAML files are UTF-8 or (with a byte order mark) UTF-16/32, like yaml.v3 accepts."""
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    encoding = next((name for bom, name in boms if raw.startswith(bom)), "utf-8")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not a text file: invalid {encoding.upper()} byte "
            f"0x{raw[err.start]:02x} at offset {err.start}"
        ) from None


def read_config_text(path: str) -> str:
    """The decoded text of the file at ``path``; OSError texts follow Go's ``open <path>: …``."""
    if not path:
        raise ConfigError("open : no such file or directory")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        operation = "read" if isinstance(err, IsADirectoryError) else "open"
        raise ConfigError(f"{operation} {path}: {reason}") from None
    return _decode(raw, path)


def load_config(path: str, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Read and validate the config file at ``path`` (relative paths: current directory)."""
    return parse_config(read_config_text(path), environ, source=path)

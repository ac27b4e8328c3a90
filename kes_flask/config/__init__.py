"""Server configuration: load, expand and validate the YAML config file (spec: config.md).

``load_config`` / ``parse_config`` return a frozen ``ServerConfig`` or raise ``ConfigError``;
``migrate_config`` converts configs of old KES versions.
"""

from .duration import format_duration, parse_duration
from .errors import ConfigError
from .levels import parse_log_level
from .loader import load_config, parse_config
from .migrate import migrate_config
from .model import ServerConfig

__all__ = [
    "ConfigError",
    "ServerConfig",
    "format_duration",
    "load_config",
    "migrate_config",
    "parse_config",
    "parse_duration",
    "parse_log_level",
]

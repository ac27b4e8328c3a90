"""The one exception every configuration problem is reported with."""


class ConfigError(Exception):
    """An invalid configuration. ``str(err)`` names the field and what is wrong.

    The server refuses to start (or, on SIGHUP, keeps the old configuration) and prints
    ``Error: <message>``.
    """

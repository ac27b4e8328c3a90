"""One console format for everything the server prints on stderr, gunicorn's messages included.

gunicorn's own logger (``Booting worker``, ``Worker (pid:…) was sent SIGKILL``, …) gets the
same formatter as kes-flask's records: Go slog text by default, one JSON object per line with
``--log-format json``. The audit log on stdout follows the same choice (``telemetry/logs.py``).
"""

from __future__ import annotations

import logging
import sys

from gunicorn.glogging import Logger

from kes_flask.config.model import LEVEL_INFO
from kes_flask.telemetry.logs import SlogFormatter, configure_error_log


def configure_console(form: str) -> None:
    """The master's logging before gunicorn starts: root and ``kes_flask`` loggers on stderr."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(SlogFormatter(form))
    root.addHandler(console)
    root.setLevel(logging.INFO)
    configure_error_log(LEVEL_INFO, None, sys.stderr, form)


class KesLogger(Logger):
    """gunicorn's logger with kes-flask's format (set as ``logger_class``)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        formatter = SlogFormatter(getattr(cfg, "kes_log_format", "text"))
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter)

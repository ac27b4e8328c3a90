"""The import graph the design relies on: a request flows TLS → identity → policy → handler →
keystore, lower layers never import upper ones, and Flask stays off the start-up path."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(*imports: str) -> set[str]:
    code = "import sys\n" + "".join(f"import {name}\n" for name in imports)
    code += "print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def test_the_master_never_imports_flask():
    """Everything the master imports is on the cold-start path; workers load Flask after they
    already answer (``server/worker.py``)."""
    loaded = _modules_after("kes_flask.cli.main", "kes_flask.cli.server")
    assert "kes_flask.server.gunicorn_app" in loaded and "kes_flask.server.worker" in loaded
    assert not {name for name in loaded if name.split(".")[0] in ("flask", "werkzeug", "jinja2")}
    assert "kes_flask.app" not in loaded


def test_the_fast_path_and_runtime_need_no_flask():
    loaded = _modules_after("kes_flask.api.fast", "kes_flask.factory", "kes_flask.server.loop")
    assert "flask" not in loaded


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("kes_flask.runtime", "kes_flask.api"),
        ("kes_flask.auth.policy", "kes_flask.api"),
        ("kes_flask.keystore.cache", "kes_flask.api"),
        ("kes_flask.keystore.fs", "kes_flask.auth"),
        ("kes_flask.telemetry.metrics", "kes_flask.api"),
        ("kes_flask.config", "kes_flask.server"),
    ],
)
def test_lower_layers_do_not_import_upper_ones(lower: str, upper: str):
    loaded = _modules_after(lower)
    assert not {name for name in loaded if name == upper or name.startswith(upper + ".")}

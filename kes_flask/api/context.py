"""The worker's runtime as seen from inside a Flask request."""

from __future__ import annotations

from flask import current_app

from kes_flask.runtime import EXTENSION, Runtime


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION]

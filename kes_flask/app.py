"""The Flask application factory: one app per worker process around the worker's runtime
(``factory.py``), built from a validated config."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from kes_flask.api import identity, keys, logs, pipeline, policy, system
from kes_flask.api.errors import NOT_FOUND, KesError
from kes_flask.api.responses import error_response, redirect_response
from kes_flask.config.model import ServerConfig
from kes_flask.factory import build_runtime
from kes_flask.runtime import EXTENSION, Runtime

log = logging.getLogger("kes_flask.api")


def create_app(config: ServerConfig, *, runtime: Runtime | None = None, **options: Any) -> Flask:
    """The Flask app around ``runtime``, or around a new one built with ``options``
    (``factory.build_runtime``'s keyword arguments)."""
    app = Flask("kes_flask")
    app.url_map.merge_slashes = False  # unclean paths are redirected by the pipeline
    for blueprint in (system.bp, keys.bp, policy.bp, identity.bp, logs.bp):
        app.register_blueprint(blueprint)
    pipeline.install(app)
    _install_error_handlers(app)
    app.extensions[EXTENSION] = runtime or build_runtime(config, **options)
    return app


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(KesError)
    def kes_error(err: KesError) -> Response:
        return error_response(err.status, err.message, err.headers)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        if isinstance(err, RequestRedirect):
            return redirect_response(err.new_url, err.code)
        if err.code is None or err.code < 400:
            return error_response(500, "internal server error")  # no other non-error is raised
        if isinstance(err, NotFound):
            return error_response(*NOT_FOUND)
        if isinstance(err, MethodNotAllowed):
            valid = set(err.valid_methods or ())
            expected = "PUT" if "PUT" in valid else "DELETE" if "DELETE" in valid else "GET"
            return error_response(
                405,
                f"received method '{request.method}' expected '{expected}'",
                {"Accept": expected},
            )
        return error_response(err.code, (err.description or err.name).strip())

    @app.errorhandler(Exception)
    def unexpected_error(err: Exception) -> Response:
        log.exception("internal error while handling the request")
        return error_response(500, "internal server error")

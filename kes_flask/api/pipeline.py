"""The request pipeline before a handler runs: method → authentication → authorization.

The order is the one clients observe from Go KES (api.md §1.3): a wrong method is 405 even for
strangers; a forbidden identity gets 403 before its input is validated or a key is looked up.
Every response carries the request's id (``X-Request-Id``), which also tags its log lines.
"""

from __future__ import annotations

import posixpath
import time

from flask import Flask, Response, g, request

from kes_flask.api.context import runtime
from kes_flask.api.errors import NOT_ALLOWED, KesError
from kes_flask.api.responses import redirect_response
from kes_flask.api.routes import Auth, Route
from kes_flask.telemetry.logs import REQUEST_ID
from kes_flask.telemetry.requests import REQUEST_ID_HEADER, request_id

# Key routes whose successful outcome keys.py audits already (Go KES's three events).
_AUDITED = {"keys.create", "keys.import_key", "keys.delete"}


def clean_path(path: str) -> str:
    """Go's ServeMux path cleaning: resolve ``.``/``..``/``//``, keep a trailing slash."""
    if not path:
        return "/"
    cleaned = posixpath.normpath(path if path.startswith("/") else "/" + path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def policy_path(route: Route, path: str) -> str:
    """The path policies see: a slash-less subtree root counts as the root with its slash."""
    return route.path if route.has_resource and path == route.path[:-1] else path


def resource_of(route: Route, path: str) -> str:
    return path[len(route.path) :] if route.has_resource and len(path) > len(route.path) else ""


def before_request() -> Response | None:
    g.received_ns = time.perf_counter_ns()
    g.request_id = request_id(request.environ.get("HTTP_X_REQUEST_ID"))
    REQUEST_ID.set(g.request_id)
    path = request.path
    cleaned = clean_path(path)
    if cleaned != path:
        query = request.query_string.decode("latin-1")
        return redirect_response(cleaned + ("?" + query if query else ""))

    rt = runtime()
    route = rt.routes.get(request.endpoint or "")
    if route is None:
        return None  # no route matched: Flask raises the 404/405 routing error next
    if not route.accepts(request.method):
        raise KesError(
            405, f"received method '{request.method}' expected '{route.method}'"
        ).with_headers({"Accept": route.method})
    g.route = route
    g.identity = ""
    if route.auth is Auth.NONE:
        return None
    peer = rt.identify(request.environ)
    g.identity = peer.identity
    if route.auth is Auth.VERIFY:
        if peer.error is not None:
            raise KesError.of(peer.error)
        if not rt.policies.authorize(peer.identity, policy_path(route, path)):
            raise KesError.of(NOT_ALLOWED)
    if route.counted:
        g.started = time.perf_counter()
        rt.metrics.request_started()
    return None


def after_request(response: Response) -> Response:
    started = g.pop("started", None)
    rt = runtime()
    if started is not None:
        rt.metrics.request_finished(response.status_code, time.perf_counter() - started)
    if rt.audit.everything:
        _audit_everything(response.status_code)
    response.headers[REQUEST_ID_HEADER] = g.get("request_id") or request_id(None)
    return response


def _audit_everything(status: int) -> None:
    """``log.audit: all``: every request to a key route and every denied request."""
    route: Route | None = g.get("route")
    endpoint = route.endpoint if route is not None else ""
    if status in (401, 403):
        message = "request denied"
    elif endpoint.startswith("keys."):
        if endpoint in _AUDITED and status == 200:
            return
        operation = endpoint.removeprefix("keys.").removesuffix("_key").removesuffix("_keys")
        resource = resource_of(route, request.path) if route is not None else ""
        message = f"secret key '{resource}' used: {operation}"
        if status != 200:
            message += " (failed)"
    else:
        return
    runtime().audit.record(
        message,
        method=request.method,
        path=request.path,
        ip=request.remote_addr or "",
        identity=g.get("identity", ""),
        code=status,
        elapsed_ns=time.perf_counter_ns() - g.get("received_ns", time.perf_counter_ns()),
    )


def teardown_request(_exc: BaseException | None) -> None:
    REQUEST_ID.set("")


def install(app: Flask) -> None:
    app.before_request(before_request)
    app.after_request(after_request)
    app.teardown_request(teardown_request)

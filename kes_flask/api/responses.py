"""Flask responses shaped like Go KES's: success bodies as Go's ``json.Encoder`` writes them
(api.md §1.8), errors as ``{"message": ...}`` (api.md §2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response

from kes_flask.api.body import json_body
from kes_flask.api.routes import ROUTES


def json_response(value: Any) -> Response:
    return Response(json_body(value), status=200, mimetype="application/json")


def empty_response() -> Response:
    response = Response(b"", status=200)
    response.headers.remove("Content-Type")
    return response


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    # Upstream writes the message with a JSON encoder (which appends a newline) and then "}".
    body = '{"message":' + json.dumps(message) + "\n}"
    return Response(body, status=status, mimetype="application/json", headers=headers)


def redirect_response(location: str, status: int = 301) -> Response:
    """A redirect the way every other answer looks: JSON, for every method (Werkzeug's is HTML).

    The body names the target, so a client that does not follow redirects sees where to go.
    """
    return error_response(status, f"moved permanently to '{location}'", {"Location": location})


_ROUTES_BY_ENDPOINT = {route.endpoint: route for route in ROUTES}


def add_route(blueprint: Blueprint, view: Callable[..., Response]) -> None:
    """Register ``view`` for its route; resource routes get the resource as ``resource``.

    Slash-less subtree roots (``/v1/key/list``) are served directly instead of redirected
    (api.md §1.2), so Go clients that build the path without a slash work in one round trip.
    """
    route = _ROUTES_BY_ENDPOINT[f"{blueprint.name}.{view.__name__}"]
    methods = ["PUT", "POST"] if route.method == "PUT" else [route.method]
    options = {"methods": methods, "provide_automatic_options": False}
    if route.has_resource:
        blueprint.add_url_rule(
            route.path, view_func=view, defaults={"resource": ""}, strict_slashes=False, **options
        )
        blueprint.add_url_rule(route.path + "<path:resource>", view_func=view, **options)
    else:
        blueprint.add_url_rule(route.path, view_func=view, **options)

"""A tiny Lambda service behind an API Gateway / function URL style event.

``GET /health`` answers ``{"status": "ok"}``; ``GET /hello?name=X`` answers a greeting with the
version that served it. The same functions back the HTTP server used by the container image.
"""

from __future__ import annotations

import json
import os

import stageflow_secrets
from service import __version__


def secrets_status() -> dict[str, dict]:
    """Each configured secret read through stageflow_secrets: its pinned version and whether it was
    read; never the value, nor anything derived from it."""
    out: dict[str, dict] = {}
    for name in stageflow_secrets.names():
        try:
            version = stageflow_secrets.parse(stageflow_secrets.reference(name))[2]
            stageflow_secrets.get(name)
            out[name] = {"version": version, "read": True}
        except stageflow_secrets.SecretError as exc:
            out[name] = {"read": False, "error": str(exc)}
    return out


def route(method: str, path: str, query: dict[str, str] | None = None) -> tuple[int, dict]:
    query = query or {}
    if method != "GET":
        return 405, {"error": "method not allowed"}
    if path == "/health":
        return 200, {"status": "ok", "version": __version__}
    if path == "/secrets":
        return 200, {"secrets": secrets_status()}
    if path in ("/", "/hello"):
        name = (query.get("name") or "world")[:64]
        return 200, {
            "message": f"hello, {name}",
            "version": __version__,
            "function_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "local"),
        }
    return 404, {"error": "not found", "path": path}


def handler(event: dict, context: object = None) -> dict:
    """Lambda entry point for HTTP API (payload 2.0) and REST API (1.0) events."""
    http = (event.get("requestContext") or {}).get("http") or {}
    method = http.get("method") or event.get("httpMethod") or "GET"
    path = event.get("rawPath") or event.get("path") or "/"
    query = event.get("queryStringParameters") or {}
    status, body = route(method, path, query)
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }

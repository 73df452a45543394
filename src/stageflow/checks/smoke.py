"""The smoke check: the deployed service's ``/health``, over HTTP or through the function's alias."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass

from stageflow.errors import EnvironmentFailure, UsageError


@dataclass(frozen=True)
class SmokeResult:
    target: str
    ok: bool
    status: int | None
    body: dict | None
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, dict | None]:
    """GET ``url``: (status, the JSON body or None). Only http(s) URLs (a usage error otherwise)."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"not an http(s) URL: {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 # nosec B310 - http(s) checked
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, None


def _json_or_none(raw) -> object:
    """The JSON in ``raw``, or None when there is none (a body that is not JSON is an unhealthy answer,
    as over HTTP, never a crash)."""
    try:
        return json.loads(raw or "null")
    except (TypeError, ValueError):
        return None


def smoke_url(url: str) -> SmokeResult:
    t0 = time.monotonic()
    try:
        status, body = http_get(url.rstrip("/") + "/health")
    except (OSError, urllib.error.URLError) as exc:
        raise EnvironmentFailure(f"smoke: {url}/health unreachable: {exc}") from None
    ok = status == 200 and isinstance(body, dict) and body.get("status") == "ok"
    return SmokeResult(url, ok, status, body, time.monotonic() - t0)


def smoke_lambda(lambda_client, function: str, alias: str) -> SmokeResult:
    """Invoke the function through its alias with an HTTP-API style GET /health event."""
    t0 = time.monotonic()
    event = {"rawPath": "/health", "requestContext": {"http": {"method": "GET"}}}
    resp = lambda_client.invoke(FunctionName=function, Qualifier=alias, Payload=json.dumps(event).encode())
    payload = json.loads(resp["Payload"].read() or b"null")
    status = payload.get("statusCode") if isinstance(payload, dict) else None
    body = _json_or_none(payload.get("body")) if isinstance(payload, dict) else None
    ok = status == 200 and isinstance(body, dict) and body.get("status") == "ok"
    return SmokeResult(f"lambda:{function}:{alias}", ok, status, body, time.monotonic() - t0)

"""``stageflow smoke ENV --url URL``: a service's ``/health`` over HTTP (a service with an HTTP endpoint
of its own). The smoke stage itself invokes the function through its alias (:mod:`stageflow.invokecheck`)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
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
        # loopback (the emulator's URLs in local mode) never through HTTP(S)_PROXY (issue 24 item 7)
        loopback = (urllib.parse.urlsplit(url).hostname or "").startswith("127.")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if loopback else None
        with (opener.open if opener else urllib.request.urlopen)(url, timeout=timeout) as resp:  # nosec B310
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, None


def smoke_url(url: str) -> SmokeResult:
    t0 = time.monotonic()
    try:
        status, body = http_get(url.rstrip("/") + "/health")
    except (OSError, urllib.error.URLError) as exc:
        raise EnvironmentFailure(f"smoke: {url}/health unreachable: {exc}") from None
    ok = status == 200 and isinstance(body, dict) and body.get("status") == "ok"
    return SmokeResult(url, ok, status, body, time.monotonic() - t0)

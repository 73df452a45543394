"""The deployed service under test, from what `stageflow integration ENV` (nox -s integration -- ENV)
passes in the environment:

- ``SERVICE_URL``: the service's HTTP base URL (its front door; local mode: the emulator's), or
- ``SERVICE_FUNCTION`` and ``SERVICE_ALIAS``: the Lambda function and alias from the environment's
  outputs, invoked with an HTTP-API style event (``AWS_REGION`` / ``AWS_ENDPOINT_URL`` as usual).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import pytest


class HttpService:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.target = self.base

    def get(self, path: str, **query: str) -> tuple[int, dict | None]:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 # nosec B310 - our service
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


class LambdaService:
    def __init__(self, function: str, alias: str):
        import boto3

        self.client = boto3.client("lambda")
        self.function, self.alias = function, alias
        self.target = f"lambda:{function}:{alias}"

    def get(self, path: str, **query: str) -> tuple[int, dict | None]:
        event = {
            "rawPath": path,
            "requestContext": {"http": {"method": "GET"}},
            "queryStringParameters": query or None,
        }
        resp = self.client.invoke(
            FunctionName=self.function, Qualifier=self.alias, Payload=json.dumps(event).encode()
        )
        payload = json.loads(resp["Payload"].read() or b"null")
        return payload.get("statusCode"), json.loads(payload.get("body") or "null")


@pytest.fixture(scope="session")
def service():
    if os.environ.get("SERVICE_URL"):
        return HttpService(os.environ["SERVICE_URL"])
    if os.environ.get("SERVICE_FUNCTION"):
        return LambdaService(os.environ["SERVICE_FUNCTION"], os.environ.get("SERVICE_ALIAS", "live"))
    pytest.fail(
        "no deployed service to test: run `nox -s integration -- ENV` (sets SERVICE_URL or SERVICE_FUNCTION)"
    )

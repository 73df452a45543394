"""The local front door: API Gateway's REST proxy on 127.0.0.1, inside the emulator process.

moto's API Gateway stores the REST API Terraform built (modules/front_door) but never invokes Lambda.
This WSGI layer in front of moto's app takes ``/_frontdoor/{api_id}/{stage}/{path}``, finds the resource
and method the way API Gateway does (an exact resource, else the greedy ``{proxy+}``; the method, else
``ANY``), reads the Lambda proxy integration's URI Terraform set (the function's ``live`` alias), and
invokes it in-process through the emulator's Lambda backend, i.e. the local runtime
(:mod:`stageflow.local.runtime`): the alias weights choose the version, the deployed zip answers, the
per-version ``AWS/Lambda`` metrics are recorded. The request becomes the REST API's proxy event
(payload format 1.0) and the function's answer (``statusCode``, ``headers``, ``multiValueHeaders``,
``body``, ``isBase64Encoded``) the HTTP response; a function error or a malformed answer is API Gateway's
``502 {"message": "Internal server error"}``. Each request also records the stage's ``AWS/ApiGateway``
metrics (Count, 4XXError, 5XXError, Latency), which the front door's alarms read.

Not emulated: the stage's throttling and its cache (Terraform sets both; AWS enforces them).

The URL a user sees (``stageflow status ENV --json``'s ``url``) is :func:`local_url` of the stage's
invoke URL: the seam "front door URL" (docs/architecture.md), chosen by the composition root.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

PREFIX = "/_frontdoor/"
_INVOKE_URL_RE = re.compile(r"^https://(?P<api>[A-Za-z0-9]+)\.execute-api\.[^/]+/(?P<stage>[^/?#]+)/?$")
_URI_RE = re.compile(r"/functions/(?P<arn>arn:[^/]+)/invocations$")
SERVER_ERROR = (502, {"Content-Type": "application/json"}, b'{"message": "Internal server error"}')
NAMESPACE = "AWS/ApiGateway"


def local_url(endpoint: str, invoke_url: str | None) -> str | None:
    """The loopback front door for a stage's invoke URL (``https://ID.execute-api.REGION.amazonaws.com/
    STAGE``) on the emulator at ``endpoint``; None when ``invoke_url`` is not one."""
    m = _INVOKE_URL_RE.match(invoke_url or "")
    if not m:
        return None
    return f"{endpoint.rstrip('/')}{PREFIX}{m['api']}/{m['stage']}"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # after the stage, starting with "/"
    query: str
    headers: Mapping[str, str]
    body: bytes
    source_ip: str


@dataclass(frozen=True)
class Route:
    api_id: str
    api_name: str
    stage: str
    account_id: str
    resource_id: str
    resource_path: str  # "/{proxy+}" or "/"
    path_parameters: Mapping[str, str] | None
    function_arn: str  # the integration's target (the alias ARN)


def proxy_event(req: Request, route: Route) -> dict[str, Any]:
    """API Gateway's REST proxy event (payload format 1.0) for ``req``."""
    query = parse_qsl(req.query, keep_blank_values=True)
    multi_q: dict[str, list[str]] = {}
    for k, v in query:
        multi_q.setdefault(k, []).append(v)
    try:
        body: str | None = req.body.decode("utf-8") if req.body else None
        encoded = False
    except UnicodeDecodeError:
        body, encoded = base64.b64encode(req.body).decode(), True
    now = time.time()
    return {
        "resource": route.resource_path,
        "path": req.path,
        "httpMethod": req.method,
        "headers": dict(req.headers) or None,
        "multiValueHeaders": {k: [v] for k, v in req.headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_q.items()} or None,
        "multiValueQueryStringParameters": multi_q or None,
        "pathParameters": dict(route.path_parameters) if route.path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": route.account_id,
            "apiId": route.api_id,
            "resourceId": route.resource_id,
            "resourcePath": route.resource_path,
            "httpMethod": req.method,
            "path": f"/{route.stage}{req.path}",
            "stage": route.stage,
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": req.source_ip, "userAgent": req.headers.get("User-Agent")},
            "domainName": req.headers.get("Host", "127.0.0.1"),
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def http_response(payload: bytes, function_error: bool) -> tuple[int, dict[str, str], bytes]:
    """The function's proxy answer as an HTTP response, as API Gateway makes it."""
    if function_error:
        return SERVER_ERROR
    try:
        answer = json.loads(payload or b"null")
        status = int(answer["statusCode"])
    except (ValueError, TypeError, KeyError):
        return SERVER_ERROR
    if not 100 <= status <= 599:
        return SERVER_ERROR
    headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
    for k, values in (answer.get("multiValueHeaders") or {}).items():
        headers[str(k)] = ", ".join(str(v) for v in values)
    body = answer.get("body")
    if body is None:
        data = b""
    elif answer.get("isBase64Encoded"):
        try:
            data = base64.b64decode(str(body), validate=True)
        except ValueError:
            return SERVER_ERROR
    else:
        data = str(body).encode("utf-8")
    headers.setdefault("Content-Type", "application/json")
    return status, headers, data


def find_route(api_id: str, stage: str, method: str, path: str) -> Route | None:
    """The resource, method and Lambda integration of ``method path`` on the emulator's REST API
    ``api_id``, stage ``stage`` (None: no such API, stage, resource or method)."""
    from moto.apigateway.models import apigateway_backends

    for account_id, regions in list(apigateway_backends.items()):
        for backend in list(regions.values()):
            api = backend.apis.get(api_id)
            if api is None or stage not in api.stages:
                continue
            for resource, params in _candidates(api.resources.values(), path):
                m = resource.resource_methods.get(method) or resource.resource_methods.get("ANY")
                integration = m.method_integration if m else None
                hit = _URI_RE.search(getattr(integration, "uri", "") or "")
                if hit:
                    return Route(
                        api.id,
                        api.name,
                        stage,
                        account_id,
                        resource.id,
                        resource.get_path(),
                        params,
                        hit["arn"],
                    )
            return None
    return None


def _candidates(resources: Iterable[Any], path: str) -> list[tuple[Any, dict[str, str] | None]]:
    """Resources matching ``path``: the exact one first, then greedy ``{name+}`` ones, longest first."""
    exact, greedy = [], []
    for r in resources:
        rp = r.get_path()
        if rp == path or (rp == "/" and path == ""):
            exact.append((r, None))
            continue
        m = re.fullmatch(r"(?P<parent>.*)/\{(?P<name>[A-Za-z0-9_]+)\+\}", rp)
        if m and path.startswith(m["parent"] + "/") and len(path) > len(m["parent"]) + 1:
            greedy.append((len(m["parent"]), r, {m["name"]: path[len(m["parent"]) + 1 :]}))
    greedy.sort(key=lambda g: -g[0])
    return exact + [(r, p) for _, r, p in greedy]


def invoke_alias(function_arn: str, event: dict) -> tuple[bytes, bool]:
    """Invoke ``function_arn`` (an alias ARN) through the emulator's Lambda backend: the local runtime."""
    from moto.awslambda.utils import get_backend

    parts = function_arn.split(":")
    backend = get_backend(parts[4], parts[3])
    headers: dict[str, str] = {}
    payload = backend.invoke(function_arn, None, json.dumps(event), {}, headers)
    return payload or b"", "x-amz-function-error" in headers


def record_metrics(route: Route, status: int, ms: float) -> None:
    """The stage's per-request metrics, as API Gateway publishes them (the front door's alarms)."""
    from moto.cloudwatch.models import cloudwatch_backends

    region = route.function_arn.split(":")[3]
    dims = [{"Name": "ApiName", "Value": route.api_name}, {"Name": "Stage", "Value": route.stage}]
    values = [
        ("Count", 1.0, "Count"),
        ("4XXError", float(400 <= status < 500), "Count"),
        ("5XXError", float(status >= 500), "Count"),
        ("Latency", ms, "Milliseconds"),
    ]
    data = [{"MetricName": n, "Dimensions": dims, "Value": v, "Unit": u} for n, v, u in values]
    with contextlib.suppress(Exception):
        cloudwatch_backends[route.account_id][region].put_metric_data(NAMESPACE, data)


def handle(req_api: str, stage: str, req: Request) -> tuple[int, dict[str, str], bytes]:
    route = find_route(req_api, stage, req.method, req.path)
    if route is None:
        return 403, {"Content-Type": "application/json"}, b'{"message": "Missing Authentication Token"}'
    start = time.monotonic()
    try:
        payload, errored = invoke_alias(route.function_arn, proxy_event(req, route))
        answer = http_response(payload, errored)
    except Exception:  # noqa: BLE001 - any failure to invoke is API Gateway's 502, never a crash
        answer = SERVER_ERROR
    record_metrics(route, answer[0], (time.monotonic() - start) * 1000)
    return answer


def wrap(app: Callable) -> Callable:
    """A WSGI app serving the front door under :data:`PREFIX` and passing everything else to ``app``."""

    def front_door(environ: dict, start_response: Callable):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            return app(environ, start_response)
        api_id, _, rest = path[len(PREFIX) :].partition("/")
        stage, _, tail = rest.partition("/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        req = Request(
            environ.get("REQUEST_METHOD", "GET"),
            "/" + quote(tail, safe="/%:@!$&'()*+,;=-._~"),
            environ.get("QUERY_STRING", ""),
            headers,
            body,
            environ.get("REMOTE_ADDR", "127.0.0.1"),
        )
        status, out_headers, data = handle(api_id, stage, req)
        out_headers = {**out_headers, "Content-Length": str(len(data))}
        start_response(f"{status} {_REASONS.get(status, 'Status')}", list(out_headers.items()))
        return [data]

    return front_door


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

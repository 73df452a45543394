"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the AWS emulator.

Every request is forwarded to the emulator unless a :class:`Fault` rule matching its AWS service and
operation fires. Rules fire at a seeded rate, so a run is reproducible for a given seed and request
order. Faults:

- ``throttle``: HTTP 400 ``ThrottlingException`` (``Throttling`` for query-protocol services)
- ``429``: HTTP 429 ``TooManyRequestsException`` (what Lambda answers when throttled)
- ``500`` / ``503``: ``InternalFailure`` / ``ServiceUnavailable``
- ``slow``: wait ``delay`` seconds, then forward (a read timeout when ``delay`` exceeds the client's)
- ``drop``: close the connection without an answer; the request never reached the emulator
- ``drop_after``: forward the request, then close the connection: the emulator did the work but the
  answer is lost (the nasty case for non-idempotent or conditional writes)

The service is the signing name in the SigV4 credential scope (``dynamodb``, ``lambda``,
``monitoring`` — ``cloudwatch`` is accepted as an alias —, ``sns``, ``ssm`` ...). The operation comes
from ``X-Amz-Target`` (JSON protocol), the ``Action`` parameter (query protocol), the
``/service/S/operation/OP`` path (Smithy RPC v2 CBOR, CloudWatch in current botocore), or the REST path
matched against botocore's own service model (Lambda, S3).

Error bodies are written in the request's protocol, so botocore parses the error code exactly as it
would from AWS (and its retry handler classifies it the same way).

Run standalone (later tests point a CLI child process at it)::

    python -m tests.helpers.faultproxy --upstream http://127.0.0.1:5000 --seed 7 --fault throttle:0.05
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KINDS = ("throttle", "429", "500", "503", "slow", "drop", "drop_after")
SERVICE_ALIASES = {"cloudwatch": "monitoring"}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}


@dataclass(frozen=True)
class Fault:
    """One rule: inject ``kind`` at ``rate`` (0..1) into calls of ``service`` / ``operation``
    (``None`` matches any)."""

    kind: str
    rate: float
    service: str | None = None
    operation: str | None = None
    delay: float = 2.0  # seconds, for "slow"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (known: {', '.join(KINDS)})")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be within 0..1, got {self.rate}")

    def matches(self, service: str, operation: str) -> bool:
        want = SERVICE_ALIASES.get(self.service or "", self.service)
        return (want is None or want == service) and (self.operation is None or self.operation == operation)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``kind:rate[:service[:operation]]``, e.g. ``throttle:0.05:dynamodb:PutItem``."""
        parts = spec.split(":")
        if len(parts) < 2:
            raise ValueError(f"fault spec {spec!r}: expected kind:rate[:service[:operation]]")
        kind, rate = parts[0], float(parts[1])
        service = parts[2] or None if len(parts) > 2 else None
        operation = parts[3] or None if len(parts) > 3 else None
        return cls(kind, rate, service, operation)


# -- naming a request -----------------------------------------------------------------------------------
SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
CBOR_PATH_RE = re.compile(r"^/service/[^/]+/operation/([^/?]+)")


@functools.cache
def _rest_routes(service: str) -> list[tuple[int, str, re.Pattern, tuple[str, ...], str]]:
    """(specificity, method, path regex, required query keys, operation) from botocore's model."""
    import botocore.session

    try:
        model = botocore.session.get_session().get_service_model(service)
    except Exception:  # noqa: BLE001 - an unknown service has no routes
        return []
    routes = []
    for name in model.operation_names:
        http_spec = model.operation_model(name).http
        uri = http_spec.get("requestUri", "/")
        path, _, query = uri.partition("?")
        keys = tuple(q.split("=", 1)[0] for q in query.split("&") if q)
        pattern = ""
        literal = 0
        for piece in re.split(r"(\{[^}]+\})", path):
            if piece.startswith("{"):
                pattern += ".+" if piece.endswith("+}") else "[^/]+"
            else:
                pattern += re.escape(piece)
                literal += len(piece)
        routes.append(
            (
                literal + 10 * len(keys),
                http_spec.get("method", "POST"),
                re.compile(f"^{pattern}/?$"),
                keys,
                name,
            )
        )
    routes.sort(key=lambda r: -r[0])
    return routes


def operation_of(method: str, path: str, headers, body: bytes) -> tuple[str, str]:
    """(service signing name, operation name) of an AWS request; "?" where unknown."""
    match = SCOPE_RE.search(headers.get("Authorization", ""))
    service = match.group(1) if match else "?"
    target = headers.get("X-Amz-Target")
    if target:
        return service, target.rsplit(".", 1)[-1]
    parts = urlsplit(path)
    cbor = CBOR_PATH_RE.match(parts.path)
    if cbor:
        return service, cbor.group(1)
    ctype = headers.get("Content-Type", "")
    if "x-www-form-urlencoded" in ctype:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return service, action[0]
    query = parse_qs(parts.query, keep_blank_values=True)
    if "Action" in query:
        return service, query["Action"][0]
    for _, m, rx, keys, name in _rest_routes(service):
        if m == method and rx.match(parts.path) and all(k in query for k in keys):
            return service, name
    return service, "?"


# -- error bodies in the request's protocol -------------------------------------------------------------
def _cbor_text(s: str) -> bytes:
    raw = s.encode()
    n = len(raw)
    if n < 24:
        return bytes([0x60 + n]) + raw
    if n < 256:
        return bytes([0x78, n]) + raw
    return bytes([0x79, n >> 8, n & 0xFF]) + raw


def _cbor_map(items: dict[str, str]) -> bytes:
    out = bytes([0xA0 + len(items)])
    for k, v in items.items():
        out += _cbor_text(k) + _cbor_text(v)
    return out


ERRORS = {  # kind -> (status, code, query code, message)
    "throttle": (400, "ThrottlingException", "Throttling", "Rate exceeded"),
    "429": (429, "TooManyRequestsException", "TooManyRequestsException", "Rate exceeded"),
    "500": (500, "InternalFailure", "InternalFailure", "injected internal failure"),
    "503": (503, "ServiceUnavailable", "ServiceUnavailable", "injected: service unavailable"),
}


def error_response(kind: str, headers, service: str = "?") -> tuple[int, dict[str, str], bytes]:
    status, code, query_code, message = ERRORS[kind]
    rid = "faultproxy-0000"
    if headers.get("X-Amz-Target"):
        body = json.dumps({"__type": f"com.amazonaws.faultproxy#{code}", "message": message}).encode()
        return status, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": rid}, body
    if headers.get("smithy-protocol") == "rpc-v2-cbor":
        body = _cbor_map({"__type": f"com.amazonaws.faultproxy#{code}", "message": message})
        return (
            status,
            {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor", "x-amzn-RequestId": rid},
            body,
        )
    if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{query_code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{rid}</RequestId></ErrorResponse>"
        ).encode()
        return status, {"Content-Type": "text/xml", "x-amzn-RequestId": rid}, body
    # REST: JSON with x-amzn-ErrorType (Lambda); botocore's rest-xml parser reads <Error><Code> too.
    if service == "s3" or headers.get("Content-Type", "").startswith("application/xml"):
        body = f"<Error><Code>{query_code}</Code><Message>{message}</Message></Error>".encode()
        return status, {"Content-Type": "application/xml", "x-amz-request-id": rid}, body
    body = json.dumps({"Type": "Service", "message": message}).encode()
    return (
        status,
        {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": rid},
        body,
    )


# -- the proxy ------------------------------------------------------------------------------------------
class FaultProxy:
    """Forwards to ``upstream``; injects :class:`Fault` rules at seeded rates. ``start()`` returns the
    endpoint ``http://127.0.0.1:PORT``; ``stop()`` ends it. Counters: ``calls[(service, op)]``,
    ``injected[(kind, service, op)]``."""

    def __init__(self, upstream: str, faults: list[Fault] | tuple[Fault, ...] = (), seed: int = 0):
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only fronts a loopback upstream")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self._lock = threading.Lock()
        self.configure(faults, seed)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # configuration and counters
    def configure(self, faults, seed: int | None = None) -> None:
        """Replace the rules (and reseed); counters restart."""
        with self._lock:
            self.faults = tuple(faults)
            if seed is not None:
                self.seed = seed
            self._rng = random.Random(self.seed)
            self.calls: Counter = Counter()
            self.injected: Counter = Counter()

    def choose(self, service: str, operation: str) -> Fault | None:
        """One seeded draw per request; the matching rules share the unit interval in order."""
        with self._lock:
            self.calls[(service, operation)] += 1
            u = self._rng.random()
            edge = 0.0
            for fault in self.faults:
                if fault.matches(service, operation):
                    edge += fault.rate
                    if u < edge:
                        self.injected[(fault.kind, service, operation)] += 1
                        return fault
            return None

    def injected_total(self, kind: str | None = None) -> int:
        return sum(n for (k, _, _), n in self.injected.items() if kind is None or k == kind)

    # lifecycle
    @property
    def endpoint(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that gave up mid-answer: expected
        return


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def log_message(self, format, *args):  # noqa: A002 - quiet
        return

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        body = self._body()
        service, operation = operation_of(self.command, self.path, self.headers, body)
        fault = self.owner.choose(service, operation)
        kind = fault.kind if fault else None
        if kind == "drop":
            self._drop()
            return
        if kind in ERRORS:
            status, headers, payload = error_response(kind, self.headers, service)
            self._reply(status, headers, payload)
            return
        if kind == "slow":
            time.sleep(fault.delay)
        try:
            status, headers, payload = self._forward(body)
        except OSError as exc:
            self._reply(502, {"Content-Type": "text/plain"}, f"faultproxy: upstream: {exc}".encode())
            return
        if kind == "drop_after":
            self._drop()
            return
        try:
            self._reply(status, headers, payload)
        except OSError:  # the client gave up (read timeout) while we were slow
            self.close_connection = True

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.owner.upstream_host, self.owner.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(self.command, self.path, body=body if body else None, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}}
            return resp.status, out, payload
        finally:
            conn.close()

    def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faultproxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fault", action="append", default=[], help="kind:rate[:service[:operation]]")
    parser.add_argument("--port-file", help="write the port here once listening")
    args = parser.parse_args(argv)
    proxy = FaultProxy(args.upstream, [Fault.parse(s) for s in args.fault], args.seed)
    endpoint = proxy.start()
    if args.port_file:
        with open(args.port_file, "w", encoding="utf-8") as fh:
            fh.write(endpoint.rsplit(":", 1)[1])
    print(f"faultproxy on {endpoint} → {args.upstream}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The smoke check: the smoke stage through the alias on a fake lambda client, and `smoke --url` over
HTTP against a /health served on 127.0.0.1 inside the test (started and stopped here)."""

from __future__ import annotations

import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stageflow.checks import stages
from stageflow.checks.smoke import SmokeResult, smoke_url
from stageflow.errors import CheckFailed, EnvironmentFailure, ExitCode, UsageError
from stageflow.invokecheck import LambdaInvokeCheck, Smoke

# --- the smoke stage: the pre-traffic check's invocation, through the alias ------------------------------


class FakeLambda:
    def __init__(self, payload: bytes, function_error: str | None = None):
        self.payload, self.function_error = payload, function_error
        self.calls: list[dict] = []

    def invoke(self, **kwargs):
        self.calls.append(kwargs)
        resp = {"StatusCode": 200, "Payload": io.BytesIO(self.payload), "ExecutedVersion": "7"}
        if self.function_error:
            resp["FunctionError"] = self.function_error
        return resp


def _answer(status, body) -> bytes:
    return json.dumps({"statusCode": status, "body": body}).encode()


def _stage(lam, tmp_path, expect, recorded=None):
    (tmp_path / "event.json").write_text('{"rawPath": "/health"}')
    check = LambdaInvokeCheck(lam, "orders-dev", Smoke("event.json", expect), tmp_path)
    recorded = {} if recorded is None else recorded
    res = stages.stage_smoke("dev", lambda: check.check("live"), lambda k, v: recorded.setdefault(k, v))
    return res, recorded


def test_smoke_stage_invokes_the_alias_with_the_event_and_records_the_result(tmp_path):
    lam = FakeLambda(_answer(200, json.dumps({"status": "ok", "version": "7"})))
    res, recorded = _stage(lam, tmp_path, {"statusCode": 200, "body": {"status": "ok"}})
    assert lam.calls[0]["Qualifier"] == "live" and lam.calls[0]["FunctionName"] == "orders-dev"
    assert json.loads(lam.calls[0]["Payload"]) == {"rawPath": "/health"}
    assert res.summary == "orders-dev:live passed"
    assert recorded["smoke"]["status"] == "passed" and recorded["smoke"]["executed_version"] == "7"


@pytest.mark.parametrize(
    ("payload", "error", "line"),
    [
        (_answer(500, "{}"), None, "statusCode = 500, expected 200"),
        (b'{"errorType": "KeyError", "errorMessage": "x"}', "Unhandled", "KeyError: x"),
        (b"not json", None, "answer: expected a JSON object, got 'not json'"),
    ],
)
def test_smoke_stage_failures_are_exit_1_with_the_reason_and_recorded(tmp_path, payload, error, line):
    recorded: dict = {}
    with pytest.raises(CheckFailed) as exc:
        _stage(FakeLambda(payload, error), tmp_path, {"statusCode": 200}, recorded)
    assert exc.value.exit_code == ExitCode.UNEXPECTED
    assert recorded["smoke"]["status"] == "failed" and recorded["smoke"]["reason"] == line
    assert exc.value.message == f"smoke check failed: orders-dev:live failed: {line}"


# --- over HTTP ----------------------------------------------------------------------------------------


class _Service:
    """Answers every GET with ``status`` and ``body`` (bytes), recording the paths asked for."""

    def __init__(self, status: int = 200, body: bytes = b'{"status": "ok"}'):
        self.status, self.body = status, body
        self.paths: list[str] = []
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                svc.paths.append(self.path)
                self.send_response(svc.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(svc.body)))
                self.end_headers()
                self.wfile.write(svc.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def service():
    made = []

    def start(*args, **kwargs):
        made.append(_Service(*args, **kwargs))
        return made[-1]

    yield start
    for s in made:
        s.stop()


def test_url_healthy(service):
    svc = service(200, b'{"status": "ok", "version": "7"}')
    res = smoke_url(svc.url)
    assert svc.paths == ["/health"]
    assert (res.target, res.ok, res.status, res.body) == (
        svc.url,
        True,
        200,
        {"status": "ok", "version": "7"},
    )
    assert 0 <= res.seconds < 5


def test_url_trailing_slash_and_path_prefix(service):
    svc = service()
    assert smoke_url(svc.url + "/").ok
    assert smoke_url(svc.url + "/prefix/").ok
    assert svc.paths == ["/health", "/prefix/health"]


@pytest.mark.parametrize(
    ("status", "raw", "body"),
    [
        (503, b'{"status": "down"}', {"status": "down"}),  # an HTTP error still has its body read
        (500, b'{"status": "ok"}', {"status": "ok"}),
        (404, b"not found", None),
        (200, b'{"status": "starting"}', {"status": "starting"}),
        (200, b"OK", None),  # not JSON
        (200, b"", None),
        (200, b'["ok"]', ["ok"]),
    ],
)
def test_url_unhealthy_answers_are_not_ok(service, status, raw, body):
    svc = service(status, raw)
    res = smoke_url(svc.url)
    assert res == SmokeResult(svc.url, False, status, body, res.seconds)


def test_url_unreachable_is_one_line_exit_3():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(EnvironmentFailure) as info:
        smoke_url(url)
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    assert info.value.one_line().startswith(f"smoke: {url}/health unreachable: <urlopen error [Errno 111] ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["ftp://example.com", "127.0.0.1:8080", "file:///etc"])
def test_url_must_be_http(url):
    with pytest.raises(UsageError) as info:
        smoke_url(url)
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.one_line() == f"not an http(s) URL: {url.rstrip('/') + '/health'!r}"

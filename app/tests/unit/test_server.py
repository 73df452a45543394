"""The HTTP server's request handling, without a socket: the query reaches the route."""

import io
import json

from service.server import Handler


class _Request(Handler):
    def __init__(self, path: str):  # no socket: drive do_GET directly
        self.path = path
        self.requestline = f"GET {path} HTTP/1.1"
        self.request_version = "HTTP/1.1"
        self.command = "GET"
        self.wfile = io.BytesIO()
        self.headers_sent: list[tuple[str, str]] = []

    def send_response(self, code, message=None):
        self.code = code

    def send_header(self, keyword, value):
        self.headers_sent.append((keyword, value))

    def end_headers(self):
        pass


def test_get_hello_passes_the_query():
    req = _Request("/hello?name=unit")
    req.do_GET()
    assert req.code == 200
    assert json.loads(req.wfile.getvalue())["message"] == "hello, unit"
    assert ("content-type", "application/json") in req.headers_sent


def test_get_unknown_path_is_404():
    req = _Request("/nope")
    req.do_GET()
    assert req.code == 404


def test_access_log_only_when_asked(monkeypatch, capsys):
    req = _Request("/health")
    monkeypatch.delenv("SERVICE_ACCESS_LOG", raising=False)
    req.log_message("%s", "quiet")
    assert capsys.readouterr().err == ""

"""The emulator's waitress channel sends a response's headers and body in one write."""

from __future__ import annotations

import contextlib
import http.client
import threading

import pytest

waitress = pytest.importorskip("waitress")


def _serve(channel_class, monkeypatch):
    """A waitress server on a free loopback port with a two-chunk app; every bytes write it queues."""
    from waitress.channel import HTTPChannel
    from waitress.server import create_server

    queued: list[bytes] = []
    real = HTTPChannel.write_soon

    def record(self, data):
        queued.append(bytes(data))
        return real(self, data)

    monkeypatch.setattr(HTTPChannel, "write_soon", record)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "4")])
        return [b"{}", b"{}"]

    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    if channel_class is not None:
        server.channel_class = channel_class
    thread = threading.Thread(target=_run_until_closed, args=(server,), daemon=True)
    thread.start()
    return server, thread, queued


def _run_until_closed(server) -> None:
    """waitress's loop ends with EBADF when the test closes the server's socket under it: that is the stop."""
    with contextlib.suppress(OSError):
        server.run()


def _get(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/", body=b"{}")
        return conn.getresponse().read()
    finally:
        conn.close()


@pytest.mark.parametrize("one_write", [False, True], ids=["waitress", "emulator"])
def test_headers_leave_with_the_first_body_bytes(monkeypatch, one_write):
    from stageflow.local.server import one_write_channel

    server, thread, queued = _serve(one_write_channel() if one_write else None, monkeypatch)
    try:
        assert _get(server.effective_port) == b"{}{}"
    finally:
        server.close()
        thread.join(timeout=5)
    head = [q for q in queued if q.startswith(b"HTTP/1.1 200")]
    assert len(head) == 1, queued
    if one_write:  # status line, headers and the first chunk in one write; the second chunk after it
        assert head[0].endswith(b"\r\n\r\n{}") and queued[-1] == b"{}", queued
    else:  # waitress alone: the headers are queued by themselves (what the emulator avoids)
        assert head[0].endswith(b"\r\n\r\n"), queued

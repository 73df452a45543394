"""A small threaded HTTP server for the container image and local smoke tests."""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from service.handler import route


class Handler(BaseHTTPRequestHandler):
    server_version = "sample-service"

    def do_GET(self):  # the http.server API names it
        parts = urlsplit(self.path)
        status, body = route("GET", parts.path, dict(parse_qsl(parts.query)))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        if os.environ.get("SERVICE_ACCESS_LOG"):
            super().log_message(fmt, *args)


def main() -> None:
    host = os.environ.get("SERVICE_HOST", "127.0.0.1")
    port = int(os.environ.get("SERVICE_PORT", "8080"))
    ThreadingHTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main()

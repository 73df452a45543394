"""Issue 24 item 7 (finding 6): in local mode no client sends emulator traffic through HTTP(S)_PROXY /
ALL_PROXY. A proxy on 127.0.0.2 records every request that reaches it; the real CLI runs with every
proxy variable pointing at it, against the emulator."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.deploy.test_rollback_emulator import setup_canary_in_flight

pytestmark = pytest.mark.emulator


class RecordingProxy:
    """Answers 502 to everything and remembers what reached it."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                seen.append(f"{self.command} {self.path}")
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_CONNECT = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.url = f"http://127.0.0.2:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy():
    p = RecordingProxy()
    yield p
    p.close()


def test_local_commands_never_go_through_the_proxy(project, emulator_state, aws, cli, proxy):
    f, out, pub, traffic = setup_canary_in_flight(project, emulator_state)
    env = {"STAGEFLOW_STATE_DIR": str(emulator_state)}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[var] = proxy.url
    cfg = str(project / "stageflow.toml")
    r = cli("--config", cfg, "--local", "--json", "status", "dev", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)
    r2 = cli("--config", cfg, "--local", "--json", "rollback", "dev", "--reason", "proxy test", env=env)
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["rollbacks"][0]["changed"] is True
    assert proxy.seen == []

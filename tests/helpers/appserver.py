"""The sample service's HTTP server on 127.0.0.1 as a child process: a test helper for the service's
own suites over real HTTP without deploying (stageflow itself reaches a deployed service through the
front door: the emulator's loopback front door in local mode, API Gateway on AWS)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

from stageflow import process
from stageflow.checks.smoke import http_get
from stageflow.errors import EnvironmentFailure

START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_service(app_dir: Path, reporter=None) -> Iterator[str]:
    """``python -m service.server`` on 127.0.0.1 (a free port) until the block ends; stopped through
    its own process group. Yields its base URL once ``/health`` answers."""
    port = free_port()
    env = dict(os.environ, SERVICE_HOST="127.0.0.1", SERVICE_PORT=str(port), PYTHONPATH=str(app_dir))
    server = process.spawn(
        [sys.executable, "-m", "service.server"],
        env=env,
        cwd=app_dir,
        stdout=process.DEVNULL,
        stderr=process.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(server, url)
        if reporter is not None:
            reporter.info("smoke", "local", f"service listening on {url} (pid {server.pid})")
        yield url
    finally:
        server.stop()


def _wait_healthy(server: process.Background, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.poll() is not None:
            err = server.stderr.read()[-300:] if server.stderr else ""
            raise EnvironmentFailure(f"the service exited at start: {err.strip()}")
        try:
            http_get(url + "/health", timeout=0.5)
            return
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise EnvironmentFailure(
                    f"the service did not answer on /health within {START_TIMEOUT_S:g} s"
                ) from None
            time.sleep(0.1)

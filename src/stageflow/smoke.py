"""Smoke and load checks of the deployed service.

In local mode the target is the service itself on 127.0.0.1 — the runtime image when a Docker engine
runs, else the app's HTTP server as a child process. On AWS the target is a URL (``--url``), or for
smoke, the function invoked through its alias.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from stageflow.errors import EnvironmentFailure, UsageError

LOCUSTFILE = Path(__file__).resolve().parent / "data" / "locustfile.py"
MAX_USERS = 50
MAX_SECONDS = 300


@dataclass(frozen=True)
class SmokeResult:
    target: str
    ok: bool
    status: int | None
    body: dict | None
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LoadResult:
    target: str
    requests: int
    failures: int
    error_rate: float
    p95_ms: float | None
    rps: float
    users: int
    seconds: int
    within_gates: bool
    detail: str

    def to_json(self) -> dict:
        return asdict(self)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, dict | None]:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"not an http(s) URL: {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 # nosec B310 - http(s) checked
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, None


@contextlib.contextmanager
def local_service(app_dir: Path, reporter=None) -> Iterator[str]:
    """The sample service's HTTP server on 127.0.0.1 as a child process; stopped by its PID."""
    port = _free_port()
    env = dict(os.environ, SERVICE_HOST="127.0.0.1", SERVICE_PORT=str(port), PYTHONPATH=str(app_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.server"],
        env=env,
        cwd=app_dir,  # noqa: S603
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")[-300:] if proc.stderr else ""
                raise EnvironmentFailure(f"the service exited at start: {err.strip()}")
            try:
                _get(url + "/health", timeout=0.5)
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise EnvironmentFailure("the service did not answer on /health within 15 s") from None
                time.sleep(0.1)
        if reporter is not None:
            reporter.info("smoke", "local", f"service listening on {url} (pid {proc.pid})")
        yield url
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def smoke_url(url: str) -> SmokeResult:
    t0 = time.monotonic()
    try:
        status, body = _get(url.rstrip("/") + "/health")
    except (OSError, urllib.error.URLError) as exc:
        raise EnvironmentFailure(f"smoke: {url}/health unreachable: {exc}") from None
    ok = status == 200 and isinstance(body, dict) and body.get("status") == "ok"
    return SmokeResult(url, ok, status, body, time.monotonic() - t0)


def smoke_lambda(lambda_client, function: str, alias: str) -> SmokeResult:
    """Invoke the function through its alias with an HTTP-API style GET /health event."""
    t0 = time.monotonic()
    event = {"rawPath": "/health", "requestContext": {"http": {"method": "GET"}}}
    resp = lambda_client.invoke(FunctionName=function, Qualifier=alias, Payload=json.dumps(event).encode())
    payload = json.loads(resp["Payload"].read() or b"null")
    status = payload.get("statusCode") if isinstance(payload, dict) else None
    body = json.loads(payload.get("body") or "null") if isinstance(payload, dict) else None
    ok = status == 200 and isinstance(body, dict) and body.get("status") == "ok"
    return SmokeResult(f"lambda:{function}:{alias}", ok, status, body, time.monotonic() - t0)


def find_locust() -> str:
    """STAGEFLOW_LOCUST, else the tool venv of scripts/setup_tools.py, else `locust` on PATH."""
    import shutil

    candidates = [
        os.environ.get("STAGEFLOW_LOCUST"),
        str(Path(__file__).resolve().parents[2] / ".tools" / "locust" / "bin" / "locust"),
        str(Path.cwd() / ".tools" / "locust" / "bin" / "locust"),
        shutil.which("locust"),
    ]
    for c in candidates:
        if c and Path(c).is_file():
            return c
    raise EnvironmentFailure("locust is not installed", "make setup (installs it in .tools/locust)")


def run_load(
    url: str,
    *,
    users: int,
    seconds: int,
    max_error_rate: float,
    max_p95_ms: float,
    locust_bin: str | None = None,
    locustfile: Path | None = None,
    spawn_rate: float | None = None,
    html: Path | None = None,
    max_users: int = MAX_USERS,
    max_seconds: int = MAX_SECONDS,
) -> LoadResult:
    """A headless locust run of ``locustfile`` (default: the built-in profile of the sample service's
    endpoints); ``html``: where locust writes its HTML report."""
    if not 1 <= users <= max_users:
        raise UsageError(f"--users must be 1..{max_users}, got {users}")
    if not 1 <= seconds <= max_seconds:
        raise UsageError(f"--seconds must be 1..{max_seconds}, got {seconds}")
    locustfile = Path(locustfile) if locustfile is not None else LOCUSTFILE
    if not locustfile.is_file():
        raise UsageError(f"no locustfile at {locustfile}")
    binary = locust_bin or find_locust()
    with tempfile.TemporaryDirectory(prefix="stageflow-load-") as tmp:
        prefix = str(Path(tmp) / "load")
        argv = [
            binary,
            "-f",
            str(locustfile),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            f"{spawn_rate if spawn_rate is not None else users:g}",
            "--run-time",
            f"{seconds}s",
            "--host",
            url,
            "--csv",
            prefix,
            "--only-summary",
            "--stop-timeout",
            "2",
            "--exit-code-on-error",
            "0",
            "--loglevel",
            "WARNING",
        ]
        if html is not None:
            Path(html).parent.mkdir(parents=True, exist_ok=True)
            argv += ["--html", str(html)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)  # noqa: S603
        stats = Path(prefix + "_stats.csv")
        if proc.returncode != 0 or not stats.exists():
            raise EnvironmentFailure(f"locust failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        with stats.open(newline="") as fh:
            rows = {r["Name"]: r for r in csv.DictReader(fh)}
    total = rows.get("Aggregated")
    if total is None:
        raise EnvironmentFailure("locust wrote no aggregated statistics")
    requests = int(total["Request Count"])
    failures = int(total["Failure Count"])
    p95 = float(total["95%"]) if total.get("95%") not in (None, "", "N/A") else None
    rate = failures / requests if requests else 1.0
    ok = requests > 0 and rate <= max_error_rate and (p95 is not None and p95 <= max_p95_ms)
    detail = (
        f"{requests} requests, errors {rate:.2%} ({'≤' if rate <= max_error_rate else '>'} "
        f"{max_error_rate:.2%}), p95 {p95:.0f} ms ({'≤' if p95 is not None and p95 <= max_p95_ms else '>'} "
        f"{max_p95_ms:.0f} ms)"
        if p95 is not None
        else f"{requests} requests, no latency data"
    )
    return LoadResult(
        url, requests, failures, rate, p95, float(total["Requests/s"]), users, seconds, ok, detail
    )

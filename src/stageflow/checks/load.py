"""The load check: one headless locust run of the service's locustfile against a URL, compared with the
environment's gates; locust's HTML report and a JSON summary in ``reports/``.

The profile (users, spawn rate, duration) comes from ``environments.NAME.tests`` or the caller, bounded
by :data:`MAX_USERS` and :data:`MAX_SECONDS` (the bounds config and the CLI also enforce).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from stageflow import process
from stageflow.checks.suite import make_reports_dir, shown
from stageflow.config import Config, Gates
from stageflow.errors import CheckFailed, EnvironmentFailure, UsageError

LOCUSTFILE = Path(__file__).resolve().parents[1] / "data" / "locustfile.py"  # when the service has none
MAX_USERS = 1000
MAX_SECONDS = 3600
Record = Callable[[dict], "str | None"]  # puts a result into the deployment history: its deployment id


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


@dataclass(frozen=True)
class LoadRun:
    environment: str
    result: LoadResult
    html: str
    json_path: str
    deployment_id: str | None
    spawn_rate: float | None = None

    @property
    def ok(self) -> bool:
        return bool(self.result.within_gates)

    def to_json(self) -> dict:
        return {
            **self.result.to_json(),
            "spawn_rate": self.spawn_rate,
            "environment": self.environment,
            "html": self.html,
            "json": self.json_path,
            "deployment_id": self.deployment_id,
        }


def find_locust() -> str:
    """STAGEFLOW_LOCUST, else the tool venv of scripts/setup_tools.py, else `locust` on PATH."""
    candidates = [
        os.environ.get("STAGEFLOW_LOCUST"),
        str(Path(__file__).resolve().parents[3] / ".tools" / "locust" / "bin" / "locust"),
        str(Path.cwd() / ".tools" / "locust" / "bin" / "locust"),
        shutil.which("locust"),
    ]
    for c in candidates:
        if c and Path(c).is_file():
            return c
    raise EnvironmentFailure("locust is not installed", "make setup (installs it in .tools/locust)")


def run_load(
    config: Config,
    env_name: str,
    url: str,
    reporter=None,
    *,
    users: int | None = None,
    spawn_rate: float | None = None,
    seconds: int | None = None,
    reports_dir: Path | None = None,
    locust_bin: str | None = None,
    record: Record | None = None,
    runner: process.Runner = process.RUNNER,
) -> LoadRun:
    """A headless locust run of the service's locustfile against ``url`` with the environment's profile
    (or the given overrides), compared with its gates. Writes ``reports/load-ENV.html`` (locust's report)
    and ``reports/load-ENV.json``; ``record`` puts the JSON into the deployment history and returns the
    deployment id. Outside the gates raises CheckFailed after the reports are written and recorded."""
    env = config.env(env_name)
    prof = env.tests
    users = prof.users if users is None else users
    spawn_rate = prof.spawn_rate if spawn_rate is None else spawn_rate
    seconds = prof.seconds if seconds is None else seconds
    if not 1 <= users <= MAX_USERS:
        raise UsageError(f"--users must be 1..{MAX_USERS}, got {users}")
    if not 1 <= seconds <= MAX_SECONDS:
        raise UsageError(f"--seconds must be 1..{MAX_SECONDS}, got {seconds}")
    locustfile = config.root / config.tests.locustfile
    locustfile = locustfile if locustfile.is_file() else LOCUSTFILE
    out = make_reports_dir(config, reports_dir)
    html, js = out / f"load-{env_name}.html", out / f"load-{env_name}.json"
    html.unlink(missing_ok=True)
    if reporter is not None:
        reporter.info(
            "load", env_name, f"{users} users (spawn {spawn_rate:g}/s) for {seconds} s against {url}"
        )
    argv = locust_argv(locust_bin or find_locust(), locustfile, url, users, spawn_rate, seconds, html)
    res = _locust(argv, url, users, seconds, env.gates, runner)
    data = {**res.to_json(), "spawn_rate": spawn_rate, "html": shown(html, config.root)}
    dep_id = record(data) if record is not None else None
    run = LoadRun(env_name, res, shown(html, config.root), shown(js, config.root), dep_id, spawn_rate)
    js.write_text(json.dumps(run.to_json(), indent=2) + "\n", encoding="utf-8")
    if reporter is not None:
        verdict = "within the gates" if res.within_gates else "OUTSIDE the gates"
        where = f", recorded in {dep_id}" if dep_id else ", not recorded (no deployment)"
        reporter.info("load", env_name, f"{res.detail}: {verdict} (report: {run.html}{where})")
    if not res.within_gates:
        raise CheckFailed(f"load test on {env_name} outside the gates: {res.detail}", f"see {run.html}")
    return run


def locust_argv(
    binary: str, locustfile: Path, url: str, users: int, spawn_rate: float | None, seconds: int, html: Path
) -> list[str]:
    """locust headless, CSV statistics under ``--csv PREFIX`` (appended by the caller), HTML report."""
    return [
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
        "--only-summary",
        "--stop-timeout",
        "2",
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "WARNING",
        "--html",
        str(html),
    ]


def _locust(
    argv: list[str], url: str, users: int, seconds: int, gates: Gates, runner: process.Runner
) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="stageflow-load-") as tmp:
        prefix = str(Path(tmp) / "load")
        res = runner([*argv, "--csv", prefix], timeout=seconds + 60, ok_codes=None)
        stats = Path(prefix + "_stats.csv")
        if res.returncode != 0 or not stats.exists():
            raise EnvironmentFailure(f"locust failed (exit {res.returncode}): {res.stderr.strip()[-300:]}")
        with stats.open(newline="") as fh:
            rows = {r["Name"]: r for r in csv.DictReader(fh)}
    total = rows.get("Aggregated")
    if total is None:
        raise EnvironmentFailure("locust wrote no aggregated statistics")
    return judge(url, total, users, seconds, gates)


def judge(url: str, total: dict, users: int, seconds: int, gates: Gates) -> LoadResult:
    """locust's aggregated row against the gates: error rate and p95 (no latency data: outside)."""
    max_error_rate, max_p95_ms = gates.max_error_rate, gates.max_p95_ms
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

"""The service's own tests, where the pipeline runs them.

The convention (paths in ``[tests]`` of stageflow.toml, relative to the repository root):

- ``app/tests/unit``: the service's unit tests, with coverage of the service's source (its tests left
  out) against a floor (``tests.coverage_floor``, default 80 %); JUnit and Cobertura reports.
- ``app/tests/integration``: run against a deployed environment. The suite gets the target in its
  environment: ``SERVICE_URL`` (an HTTP base URL: in local mode the app server on 127.0.0.1, on AWS
  ``environments.NAME.tests.url`` when set) and ``SERVICE_FUNCTION`` / ``SERVICE_ALIAS`` (from the
  environment's outputs, on AWS).
- ``app/tests/load/locustfile.py``: the load profile; users, spawn rate and duration come from
  ``environments.NAME.tests``; the result is compared with the environment's gates.

Each check is a plain function taking plain inputs (config, environment name, a target, a reporter)
and returning a frozen result; a failing check raises :class:`~stageflow.errors.CheckFailed` (exit 1)
after its reports are written. ``STAGES`` adapts them to ``pipeline.deploy``'s stage list.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
import xml.etree.ElementTree as ET  # noqa: S405 # nosec B405 - our own pytest/coverage reports
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stageflow import process
from stageflow.config import Config
from stageflow.errors import CheckFailed, EnvironmentFailure, UsageError

REPORTS = "reports"
# report files (in reports/) the CI configurations publish: buildspecs/*.yml, .github/workflows/*.yml
UNIT_JUNIT = "junit-service-unit.xml"
UNIT_COVERAGE = "coverage-service.xml"
INTEGRATION_JUNIT = "junit-service-integration-{env}.xml"
SUITE_TIMEOUT = 1800.0
Runner = process.Runner


# -- results ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LintResult:
    paths: tuple[str, ...]
    ok: bool
    seconds: float
    problems: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        where = ", ".join(self.paths)
        if self.ok:
            return f"ruff check + format: clean ({where})"
        return f"ruff: {len(self.problems)} problem(s) in {where}; first: {self.problems[0][:160]}"

    def to_json(self) -> dict:
        return {"ok": self.ok, "paths": list(self.paths), "problems": list(self.problems[:20])}


@dataclass(frozen=True)
class SuiteCounts:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    failed_names: tuple[str, ...] = ()

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


@dataclass(frozen=True)
class UnitResult:
    path: str
    counts: SuiteCounts
    coverage_percent: float | None
    floor: float
    junit: str
    coverage_xml: str
    seconds: float
    returncode: int

    @property
    def tests_ok(self) -> bool:
        return (
            self.returncode == 0
            and self.counts.tests > 0
            and not (self.counts.failures or self.counts.errors)
        )

    @property
    def coverage_ok(self) -> bool:
        return self.coverage_percent is not None and self.coverage_percent + 1e-9 >= self.floor

    @property
    def ok(self) -> bool:
        return self.tests_ok and self.coverage_ok

    def coverage_line(self) -> str:
        if self.coverage_percent is None:
            return f"coverage unknown (no {self.coverage_xml})"
        sign = "≥" if self.coverage_ok else "<"
        return f"coverage {self.coverage_percent:.1f} % {sign} floor {self.floor:g} %"

    @property
    def summary(self) -> str:
        c = self.counts
        return f"{c.passed}/{c.tests} passed, {self.coverage_line()}"

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok, "passed": self.counts.passed}


@dataclass(frozen=True)
class SuiteResult:
    environment: str
    path: str
    target: str
    counts: SuiteCounts
    junit: str
    log: str
    seconds: float
    returncode: int

    @property
    def ok(self) -> bool:
        return (
            self.returncode == 0
            and self.counts.tests > 0
            and not (self.counts.failures or self.counts.errors)
        )

    @property
    def summary(self) -> str:
        c = self.counts
        return f"{c.passed}/{c.tests} passed against {self.target}"

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok, "passed": self.counts.passed}


@dataclass(frozen=True)
class LoadRun:
    environment: str
    result: object  # smoke.LoadResult
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


@dataclass(frozen=True)
class ServiceTarget:
    """Where the deployed service answers: an HTTP base URL, a Lambda function and alias, or both."""

    url: str | None = None
    function: str | None = None
    alias: str | None = None
    region: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return self.url or f"lambda:{self.function}:{self.alias}"

    def env(self) -> dict[str, str]:
        out = dict(self.extra_env)
        if self.url:
            out["SERVICE_URL"] = self.url
        if self.function:
            out["SERVICE_FUNCTION"] = self.function
            out["SERVICE_ALIAS"] = self.alias or "live"
        if self.region:
            out.setdefault("AWS_REGION", self.region)
            out.setdefault("AWS_DEFAULT_REGION", self.region)
        return out


# -- report parsing --------------------------------------------------------------------------------------
def parse_junit(path: Path) -> SuiteCounts:
    """Totals of a pytest JUnit XML file (``<testsuites>`` or a single ``<testsuite>``)."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314 # nosec B314 - a file our own child wrote
    except (OSError, ET.ParseError):
        return SuiteCounts()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for s in suites:
        for k in total:
            total[k] += int(s.get(k, 0) or 0)
        for case in s.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed.append(f"{case.get('classname', '')}::{case.get('name', '')}".lstrip(":"))
    return SuiteCounts(**total, failed_names=tuple(failed))


def parse_cobertura(path: Path) -> float | None:
    """The line coverage in percent of a Cobertura XML file, or None when there is none."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314 # nosec B314 - a file our own child wrote
    except (OSError, ET.ParseError):
        return None
    rate = root.get("line-rate")
    return round(float(rate) * 100, 2) if rate is not None else None


# -- helpers ---------------------------------------------------------------------------------------------
def _reports_dir(config: Config, reports_dir: Path | None) -> Path:
    out = Path(reports_dir) if reports_dir is not None else config.root / REPORTS
    out.mkdir(parents=True, exist_ok=True)
    return out


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _suite_dir(config: Config, rel: str, what: str) -> Path:
    path = (config.root / rel).resolve()
    if not path.is_dir():
        raise UsageError(
            f"no service {what} tests at {rel}", f"the convention: {config.service.source}/tests/{what}"
        )
    return path


def _pytest_argv(config: Config, suite: Path, junit: Path, *extra: str) -> list[str]:
    app = (config.root / config.service.source).resolve()
    argv = [sys.executable, "-m", "pytest", str(suite), f"--junitxml={junit}", "-q", "--rootdir", str(app)]
    ini = app / "tests" / "pytest.ini"
    argv += ["-c", str(ini)] if ini.is_file() else ["-p", "no:cacheprovider"]
    return [*argv, *extra]


def _child_env(config: Config, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    app = str((config.root / config.service.source).resolve())
    # an outer pytest (stageflow's own tests under --cov) must not reach into the service's run
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS") and not k.startswith("COV_CORE_")
    }
    env["PYTHONPATH"] = app + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("NO_COLOR", "1")
    env.update(extra or {})
    return env


def _run(runner: Runner, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> process.Result:
    try:
        return runner(argv, cwd=cwd, timeout=SUITE_TIMEOUT, env=env, ok_codes=None)
    except (process.CommandNotFound, process.CommandTimeout) as exc:
        raise EnvironmentFailure(exc.message) from None


def _tail(text: str, lines: int = 12) -> list[str]:
    return [ln for ln in text.strip().splitlines()[-lines:] if ln.strip()]


# -- lint ------------------------------------------------------------------------------------------------
def run_lint(config: Config, reporter=None, *, runner: Runner = process.RUNNER) -> LintResult:
    """``ruff check`` and ``ruff format --check`` over the service's source, with the nearest ruff
    settings (the sample service has its own ``app/.ruff.toml``). A problem raises CheckFailed; ruff
    missing is an environment failure."""
    import shutil

    ruff = Path(sys.executable).parent / "ruff"
    exe = str(ruff) if ruff.is_file() else shutil.which("ruff")
    if exe is None:
        raise EnvironmentFailure("ruff is not installed", "pip install -e '.[dev]'")
    src = config.service.source
    t0 = time.monotonic()
    env = _child_env(config)
    problems: list[str] = []
    check = _run(runner, [exe, "check", "--output-format", "concise", src], cwd=config.root, env=env)
    if check.returncode not in (0, 1):
        raise EnvironmentFailure(f"ruff check exited {check.returncode}: {' '.join(_tail(check.stderr, 1))}")
    if check.returncode == 1:
        found = [ln for ln in check.stdout.splitlines() if re.match(r"^\S+:\d+:\d+: ", ln)]
        problems += found or ["ruff check found problems"]
    fmt = _run(runner, [exe, "format", "--check", src], cwd=config.root, env=env)
    if fmt.returncode not in (0, 1):
        raise EnvironmentFailure(f"ruff format exited {fmt.returncode}: {' '.join(_tail(fmt.stderr, 1))}")
    if fmt.returncode == 1:
        found = [ln for ln in fmt.stdout.splitlines() if ln.startswith("Would reformat")]
        problems += found or ["ruff format would reformat files"]
    res = LintResult((src,), not problems, time.monotonic() - t0, tuple(problems))
    if not res.ok:
        if reporter is not None:
            for p in res.problems[:10]:
                reporter.info("lint", "service", p)
        raise CheckFailed(f"service lint failed: {res.summary}", f"ruff check {src}; ruff format {src}")
    return res


# -- unit ------------------------------------------------------------------------------------------------
def run_unit(
    config: Config,
    reporter=None,
    *,
    floor: float | None = None,
    reports_dir: Path | None = None,
    runner: Runner = process.RUNNER,
    extra_args: Sequence[str] = (),
) -> UnitResult:
    """The service's unit tests with coverage of its source (tests omitted) against the floor.
    Writes ``reports/junit-service-unit.xml`` and ``reports/coverage-service.xml`` (Cobertura)."""
    suite = _suite_dir(config, config.tests.unit, "unit")
    floor = config.tests.coverage_floor if floor is None else floor
    if not 0 <= floor <= 100:
        raise UsageError(f"coverage floor must be 0..100, got {floor:g}")
    out = _reports_dir(config, reports_dir)
    junit, cov_xml = out / UNIT_JUNIT, out / UNIT_COVERAGE
    for stale in (junit, cov_xml):
        stale.unlink(missing_ok=True)
    app = (config.root / config.service.source).resolve()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="stageflow-cov-") as tmp:
        rc = Path(tmp) / "coveragerc"
        rc.write_text(
            f"[run]\nsource =\n    {app}\nomit =\n    */tests/*\n    */test_*.py\n    */conftest.py\n"
            f"data_file = {Path(tmp) / '.coverage'}\n",
            encoding="utf-8",
        )
        argv = _pytest_argv(
            config,
            suite,
            junit,
            f"--cov={app}",
            f"--cov-config={rc}",
            f"--cov-report=xml:{cov_xml}",
            "--cov-report=term",
            *extra_args,
        )
        res = _run(runner, argv, cwd=config.root, env=_child_env(config))
    counts = parse_junit(junit)
    result = UnitResult(
        path=_shown(suite, config.root),
        counts=counts,
        coverage_percent=parse_cobertura(cov_xml),
        floor=floor,
        junit=_shown(junit, config.root),
        coverage_xml=_shown(cov_xml, config.root),
        seconds=time.monotonic() - t0,
        returncode=res.returncode,
    )
    if reporter is not None:
        reporter.info("unit", "service", f"{result.summary} (reports: {result.junit}, {result.coverage_xml})")
    if res.returncode == 5 or counts.tests == 0:
        raise CheckFailed(f"service unit tests: no tests ran in {result.path}")
    if not result.tests_ok:
        if reporter is not None:
            for line in _tail(res.stdout):
                reporter.info("unit", "pytest", line)
        first = counts.failed_names[0] if counts.failed_names else f"pytest exit {res.returncode}"
        n = counts.failures + counts.errors
        raise CheckFailed(
            f"service unit tests failed: {n} of {counts.tests} failed (first: {first})", f"see {result.junit}"
        )
    if not result.coverage_ok:
        raise CheckFailed(
            f"service unit tests: {result.coverage_line()}",
            f"add tests, or lower tests.coverage_floor in stageflow.toml; see {result.coverage_xml}",
        )
    return result


# -- where the deployed service answers ------------------------------------------------------------------
@contextlib.contextmanager
def service_target(factory, env_name: str, *, url: str | None = None) -> Iterator[ServiceTarget]:
    """``url`` when given; else the factory's service endpoint (the emulator: the app served on
    127.0.0.1 for the block's duration; AWS: the function and alias from the outputs), plus the
    environment's ``tests.url`` on AWS."""
    env = factory.env(env_name)
    if url:
        yield ServiceTarget(url=url)
        return
    with factory.service_endpoint(env_name) as ep:
        yield ServiceTarget(
            url=ep.url or env.tests.url,
            function=ep.function,
            alias=ep.alias,
            region=None if ep.url else factory.config.service.region,
        )


# -- integration -----------------------------------------------------------------------------------------
def run_integration(
    config: Config,
    env_name: str,
    target: ServiceTarget,
    reporter=None,
    *,
    reports_dir: Path | None = None,
    runner: Runner = process.RUNNER,
    extra_args: Sequence[str] = (),
) -> SuiteResult:
    """The service's integration suite against ``target``; JUnit in
    ``reports/junit-service-integration-ENV.xml``, its output in ``reports/service-integration-ENV.log``."""
    config.env(env_name)
    suite = _suite_dir(config, config.tests.integration, "integration")
    out = _reports_dir(config, reports_dir)
    junit = out / INTEGRATION_JUNIT.format(env=env_name)
    log = out / f"service-integration-{env_name}.log"
    junit.unlink(missing_ok=True)
    t0 = time.monotonic()
    env = _child_env(config, {"STAGEFLOW_ENV": env_name, **target.env()})
    res = _run(runner, _pytest_argv(config, suite, junit, *extra_args), cwd=config.root, env=env)
    log.write_text(res.stdout + res.stderr, encoding="utf-8")
    counts = parse_junit(junit)
    result = SuiteResult(
        env_name,
        _shown(suite, config.root),
        target.where,
        counts,
        _shown(junit, config.root),
        _shown(log, config.root),
        time.monotonic() - t0,
        res.returncode,
    )
    if reporter is not None:
        reporter.info("integration", env_name, f"{result.summary} (report: {result.junit})")
    if res.returncode == 5 or counts.tests == 0:
        raise CheckFailed(f"service integration tests: no tests ran in {result.path}", f"see {result.log}")
    if not result.ok:
        if reporter is not None:
            for line in _tail(res.stdout):
                reporter.info("integration", "pytest", line)
        first = counts.failed_names[0] if counts.failed_names else f"pytest exit {res.returncode}"
        raise CheckFailed(
            f"service integration tests failed on {env_name}: {counts.failures + counts.errors} of "
            f"{counts.tests} failed (first: {first})",
            f"see {result.log}",
        )
    return result


# -- load ------------------------------------------------------------------------------------------------
MAX_LOAD_USERS = 1000
MAX_LOAD_SECONDS = 3600


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
    record: Callable[[dict], str | None] | None = None,
) -> LoadRun:
    """A headless locust run of the service's locustfile against ``url`` with the environment's profile
    (or the given overrides), compared with its gates. Writes ``reports/load-ENV.html`` (locust's report)
    and ``reports/load-ENV.json``; ``record`` puts the JSON into the deployment history and returns the
    deployment id. Outside the gates raises CheckFailed after the reports are written and recorded."""
    from stageflow import smoke

    env = config.env(env_name)
    prof = env.tests
    users = prof.users if users is None else users
    spawn_rate = prof.spawn_rate if spawn_rate is None else spawn_rate
    seconds = prof.seconds if seconds is None else seconds
    locustfile = config.root / config.tests.locustfile
    out = _reports_dir(config, reports_dir)
    html, js = out / f"load-{env_name}.html", out / f"load-{env_name}.json"
    html.unlink(missing_ok=True)
    if reporter is not None:
        reporter.info(
            "load", env_name, f"{users} users (spawn {spawn_rate:g}/s) for {seconds} s against {url}"
        )
    res = smoke.run_load(
        url,
        users=users,
        seconds=seconds,
        max_error_rate=env.gates.max_error_rate,
        max_p95_ms=env.gates.max_p95_ms,
        locust_bin=locust_bin,
        locustfile=locustfile if locustfile.is_file() else None,
        spawn_rate=spawn_rate,
        html=html,
        max_users=MAX_LOAD_USERS,
        max_seconds=MAX_LOAD_SECONDS,
    )
    data = {**res.to_json(), "spawn_rate": spawn_rate, "html": _shown(html, config.root)}
    dep_id = record(data) if record is not None else None
    run = LoadRun(env_name, res, _shown(html, config.root), _shown(js, config.root), dep_id, spawn_rate)
    js.write_text(json.dumps(run.to_json(), indent=2) + "\n", encoding="utf-8")
    if reporter is not None:
        verdict = "within the gates" if res.within_gates else "OUTSIDE the gates"
        where = f", recorded in {dep_id}" if dep_id else ", not recorded (no deployment)"
        reporter.info("load", env_name, f"{res.detail}: {verdict} (report: {run.html}{where})")
    if not res.within_gates:
        raise CheckFailed(f"load test on {env_name} outside the gates: {res.detail}", f"see {run.html}")
    return run


def record_in_history(factory, env_name: str, key: str, value: dict) -> str | None:
    """Attach a result to the environment's latest deployment record; None when it has none."""
    ctx = factory.environment(env_name)
    latest = ctx.history.list(limit=1)
    if not latest:
        return None
    dep = latest[0]
    ctx.history.update(dep, extra={**dep.extra, key: value})
    return dep.deployment_id


# -- pipeline stages: each returns a frozen result with ``summary`` and ``to_json()`` (pipeline.run_stage)
@dataclass(frozen=True)
class CheckResult:
    summary: str
    data: Mapping = field(default_factory=dict)

    def to_json(self) -> dict:
        return dict(self.data)


SKIP_ENV = "STAGEFLOW_SKIP_SERVICE_TESTS"
WAITING = "not yet: the canary awaits approval (runs after the promotion)"


def _skipped_here(name: str) -> str | None:
    """``STAGEFLOW_SKIP_SERVICE_TESTS=integration,load``: CodeBuild's deploy project leaves these to the
    pipeline's own test actions (buildspecs/integration.yml), which publish their reports."""
    names = {n.strip() for n in os.environ.get(SKIP_ENV, "").split(",") if n.strip()}
    return f"skipped here ({SKIP_ENV}: the pipeline runs it as its own action)" if name in names else None


def stage_service_lint(factory) -> LintResult:
    return run_lint(factory.config, factory.reporter)


def stage_service_unit(factory) -> UnitResult:
    return run_unit(factory.config, factory.reporter)


def stage_smoke(factory, env_name: str, *, paused: bool = False) -> CheckResult:
    from stageflow import smoke

    if paused:
        return CheckResult(WAITING, {"skipped": True})
    env = factory.env(env_name)
    with factory.service_endpoint(env_name) as ep:
        url = ep.url or env.tests.url
        res = smoke.smoke_url(url) if url else smoke.smoke_lambda(ep.lambda_client, ep.function, ep.alias)
    record_in_history(factory, env_name, "smoke", res.to_json())
    if not res.ok:
        raise CheckFailed(
            f"smoke check failed: {res.target} answered {res.status}", f"stageflow status {env_name}"
        )
    return CheckResult(f"{res.target}/health → {res.status} ok", res.to_json())


def stage_integration(factory, env_name: str, *, paused: bool = False) -> CheckResult:
    if not factory.env(env_name).tests.integration:
        return CheckResult("not configured for this environment", {"skipped": True})
    if why := _skipped_here("integration"):
        return CheckResult(why, {"skipped": True})
    if paused:
        return CheckResult(WAITING, {"skipped": True})
    with service_target(factory, env_name) as target:
        res = run_integration(factory.config, env_name, target, factory.reporter)
    record_in_history(
        factory, env_name, "integration", {"ok": res.ok, "tests": res.counts.tests, "junit": res.junit}
    )
    return CheckResult(res.summary, res.to_json())


def stage_load(factory, env_name: str, *, paused: bool = False) -> CheckResult:
    env = factory.env(env_name)
    if not env.tests.load:
        return CheckResult("not configured for this environment", {"skipped": True})
    if why := _skipped_here("load"):
        return CheckResult(why, {"skipped": True})
    if paused:
        return CheckResult(WAITING, {"skipped": True})
    with service_target(factory, env_name) as target:
        if not target.url:
            raise UsageError(
                f"load test on {env_name} needs the service's HTTP endpoint",
                f"set environments.{env_name}.tests.url, or tests.load = false",
            )
        res = run_load(
            factory.config,
            env_name,
            target.url,
            factory.reporter,
            record=lambda data: record_in_history(factory, env_name, "load", data),
        )
    return CheckResult(f"{res.result.detail}: within the gates ({res.html})", res.to_json())

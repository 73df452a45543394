"""The service's unit tests in its own test environment (:mod:`stageflow.testenv`: the runtime's Python,
the service's requirement files, cached by content), with coverage as the service's settings say
(:mod:`stageflow.checks.toolconfig`) against a floor: the service's ``fail_under`` when it sets one, else
``tests.coverage_floor`` (default 80 %). JUnit and Cobertura reports in ``reports/``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stageflow import process, testenv
from stageflow.checks import toolconfig
from stageflow.checks.suite import (
    UNIT_COVERAGE,
    UNIT_JUNIT,
    SuiteCounts,
    make_reports_dir,
    parse_cobertura,
    parse_junit,
    pytest_argv,
    run_tool,
    shown,
    suite_dir,
    tail,
)
from stageflow.config import Config
from stageflow.errors import CheckFailed, UsageError

TESTENV_CACHE = Path(".stageflow") / "cache" / "testenv"  # under the repository root, by default
_NOT_FOR_THE_SERVICE = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "COVERAGE_PROCESS_START", "COVERAGE_RCFILE")


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
    floor_from: str = "tests.coverage_floor"  # or "--floor", or the service's file and fail_under
    environment: dict = field(default_factory=dict)  # the test environment: python, files, reused
    coverage_settings: str = ""  # whose coverage settings, and what they measure

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
        return f"coverage {self.coverage_percent:.1f} % {sign} floor {self.floor:g} % ({self.floor_from})"

    @property
    def summary(self) -> str:
        c = self.counts
        return f"{c.passed}/{c.tests} passed, {self.coverage_line()}"

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok, "passed": self.counts.passed}


def run_unit(
    config: Config,
    reporter=None,
    *,
    floor: float | None = None,
    reports_dir: Path | None = None,
    runner: process.Runner = process.RUNNER,
    extra_args: Sequence[str] = (),
    cache_dir: Path | None = None,
) -> UnitResult:
    """The service's unit tests in its own test environment (built or reused under ``cache_dir``,
    default ``.stageflow/cache/testenv``), with coverage as its settings say, against the floor.
    Writes ``reports/junit-service-unit.xml`` and ``reports/coverage-service.xml`` (Cobertura)."""
    suite = suite_dir(config, config.tests.unit, "unit")
    app = (config.root / config.service.source).resolve()
    coverage = toolconfig.coverage_settings(app, config.root)
    floor, floor_from = _floor(config, floor, coverage)
    out = make_reports_dir(config, reports_dir)
    junit, cov_xml = out / UNIT_JUNIT, out / UNIT_COVERAGE
    for stale in (junit, cov_xml):
        stale.unlink(missing_ok=True)
    env = _test_env(config, app, cache_dir or config.root / TESTENV_CACHE, runner, reporter)
    if reporter is not None:
        reporter.info("unit", "service", f"coverage settings: {coverage.describe()}")
    t0 = time.monotonic()
    res = _pytest_with_coverage(config, env, suite, junit, cov_xml, coverage, runner, extra_args)
    result = UnitResult(
        path=shown(suite, config.root),
        counts=parse_junit(junit),
        coverage_percent=parse_cobertura(cov_xml),
        floor=floor,
        junit=shown(junit, config.root),
        coverage_xml=shown(cov_xml, config.root),
        seconds=time.monotonic() - t0,
        returncode=res.returncode,
        floor_from=floor_from,
        environment=_describe_env(env, app),
        coverage_settings=coverage.describe(),
    )
    _judge(result, res, reporter)
    if reporter is not None:
        reporter.info("unit", "service", f"{result.summary} (reports: {result.junit}, {result.coverage_xml})")
    return result


def _floor(config: Config, given: float | None, coverage: toolconfig.CoverageSettings) -> tuple[float, str]:
    """An explicit ``--floor``, else the service's own ``fail_under``, else ``tests.coverage_floor``."""
    if given is not None:
        floor, source = given, "--floor"
    elif coverage.fail_under is not None:
        floor, source = coverage.fail_under, f"fail_under of {coverage.origin}"
    else:
        floor, source = config.tests.coverage_floor, "tests.coverage_floor"
    if not 0 <= floor <= 100:
        raise UsageError(f"coverage floor must be 0..100, got {floor:g} ({source})")
    return floor, source


def _test_env(config: Config, app: Path, cache: Path, runner: process.Runner, reporter) -> testenv.TestEnv:
    files = testenv.requirement_files(app, config.tests.requirements)
    if reporter is not None:
        names = ", ".join(_file_label(f) for f in files) or "no requirement files"
        reporter.info("unit", "service", f"test environment: {config.service.runtime} with {names}")
    t0 = time.monotonic()
    env = testenv.ensure(config.service.runtime, files, cache, runner=runner)
    if reporter is not None:
        how = "reused" if env.reused else f"built in {time.monotonic() - t0:.0f} s"
        where = shown(env.python, config.root)
        reporter.info("unit", "service", f"test environment {env.key}: {how} ({where})")
    return env


def _file_label(path: Path) -> str:
    locked = testenv.is_hash_locked(path.read_text(encoding="utf-8", errors="replace"))
    return f"{path.name} (hash-locked)" if locked else path.name


def _describe_env(env: testenv.TestEnv, app: Path) -> dict:
    return {
        "python": str(env.python),
        "key": env.key,
        "reused": env.reused,
        "requirements": [shown(f, app) for f in env.files],
    }


def service_environ(config: Config, app: Path, **extra: str) -> dict[str, str]:
    """The environment of the service's tests: :func:`stageflow.testenv.test_environ` (the service's
    region, dummy credentials, none of the shell's AWS settings) with the service's folder importable;
    nothing of an outer pytest or coverage run (stageflow's own tests under --cov) reaches in."""
    env = testenv.test_environ(config.service.region)
    for name in _NOT_FOR_THE_SERVICE:
        env.pop(name, None)
    env["PYTHONPATH"] = str(app)
    env.setdefault("NO_COLOR", "1")
    env.update(extra)
    return env


def _pytest_with_coverage(
    config: Config,
    env: testenv.TestEnv,
    suite: Path,
    junit: Path,
    cov_xml: Path,
    coverage: toolconfig.CoverageSettings,
    runner: process.Runner,
    extra_args: Sequence[str],
) -> process.Result:
    app = (config.root / config.service.source).resolve()
    with tempfile.TemporaryDirectory(prefix="stageflow-cov-") as tmp:
        rc = coverage.write(Path(tmp) / "coveragerc")
        argv = pytest_argv(
            config,
            suite,
            junit,
            "--cov",
            f"--cov-config={rc}",
            f"--cov-report=xml:{cov_xml}",
            "--cov-report=term",
            *extra_args,
            python=env.python,
        )
        child = service_environ(config, app, COVERAGE_FILE=str(Path(tmp) / ".coverage"))
        return run_tool(runner, argv, cwd=app, env=child)


def _judge(result: UnitResult, res: process.Result, reporter) -> None:
    """Collection errors, no tests, a failing test, coverage under the floor: CheckFailed, in that order."""
    counts = result.counts
    errors = testenv.collection_errors(f"{res.stdout}\n{res.stderr}")
    if errors:
        if reporter is not None:
            for line in errors:
                reporter.info("unit", "pytest", line)
        raise CheckFailed(
            f"service unit tests could not be collected: {' — '.join(errors[:2])}",
            "the test environment holds only the service's requirement files (tests.requirements)",
        )
    if res.returncode == 5:
        raise CheckFailed(
            f"service unit tests: pytest collected no tests in {result.path} (exit 5)",
            "test files are named test_*.py or *_test.py (or as the service's pytest settings say)",
        )
    if counts.tests == 0:
        output = tail(f"{res.stdout}\n{res.stderr}")
        if reporter is not None:
            for line in output:
                reporter.info("unit", "pytest", line)
        last = output[-1][:200] if output else "no output"
        raise CheckFailed(
            f"service unit tests: none ran in {result.path} (pytest exit {res.returncode}: {last})"
        )
    if not result.tests_ok:
        if reporter is not None:
            for line in tail(res.stdout):
                reporter.info("unit", "pytest", line)
        first = counts.failed_names[0] if counts.failed_names else f"pytest exit {res.returncode}"
        n = counts.failures + counts.errors
        raise CheckFailed(
            f"service unit tests failed: {n} of {counts.tests} failed (first: {first})", f"see {result.junit}"
        )
    if not result.coverage_ok:
        hint = (
            "add tests, or lower fail_under in the service's coverage settings"
            if result.floor_from.startswith("fail_under")
            else "add tests, or lower tests.coverage_floor in stageflow.toml"
        )
        raise CheckFailed(
            f"service unit tests: {result.coverage_line()}", f"{hint}; see {result.coverage_xml}"
        )

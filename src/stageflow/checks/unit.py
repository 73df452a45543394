"""The service's unit tests with coverage of its source (its tests left out) against a floor
(``tests.coverage_floor``, default 80 %); JUnit and Cobertura reports in ``reports/``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from stageflow import process
from stageflow.checks.suite import (
    UNIT_COVERAGE,
    UNIT_JUNIT,
    SuiteCounts,
    child_env,
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


def run_unit(
    config: Config,
    reporter=None,
    *,
    floor: float | None = None,
    reports_dir: Path | None = None,
    runner: process.Runner = process.RUNNER,
    extra_args: Sequence[str] = (),
) -> UnitResult:
    """The service's unit tests with coverage of its source (tests omitted) against the floor.
    Writes ``reports/junit-service-unit.xml`` and ``reports/coverage-service.xml`` (Cobertura)."""
    suite = suite_dir(config, config.tests.unit, "unit")
    floor = config.tests.coverage_floor if floor is None else floor
    if not 0 <= floor <= 100:
        raise UsageError(f"coverage floor must be 0..100, got {floor:g}")
    out = make_reports_dir(config, reports_dir)
    junit, cov_xml = out / UNIT_JUNIT, out / UNIT_COVERAGE
    for stale in (junit, cov_xml):
        stale.unlink(missing_ok=True)
    t0 = time.monotonic()
    res = _pytest_with_coverage(config, suite, junit, cov_xml, runner, extra_args)
    counts = parse_junit(junit)
    result = UnitResult(
        path=shown(suite, config.root),
        counts=counts,
        coverage_percent=parse_cobertura(cov_xml),
        floor=floor,
        junit=shown(junit, config.root),
        coverage_xml=shown(cov_xml, config.root),
        seconds=time.monotonic() - t0,
        returncode=res.returncode,
    )
    if reporter is not None:
        reporter.info("unit", "service", f"{result.summary} (reports: {result.junit}, {result.coverage_xml})")
    _judge(result, res, reporter)
    return result


def _pytest_with_coverage(
    config: Config,
    suite: Path,
    junit: Path,
    cov_xml: Path,
    runner: process.Runner,
    extra_args: Sequence[str],
) -> process.Result:
    app = (config.root / config.service.source).resolve()
    with tempfile.TemporaryDirectory(prefix="stageflow-cov-") as tmp:
        rc = Path(tmp) / "coveragerc"
        rc.write_text(
            f"[run]\nsource =\n    {app}\nomit =\n    */tests/*\n    */test_*.py\n    */conftest.py\n"
            f"data_file = {Path(tmp) / '.coverage'}\n",
            encoding="utf-8",
        )
        argv = pytest_argv(
            config,
            suite,
            junit,
            f"--cov={app}",
            f"--cov-config={rc}",
            f"--cov-report=xml:{cov_xml}",
            "--cov-report=term",
            *extra_args,
        )
        return run_tool(runner, argv, cwd=config.root, env=child_env(config))


def _judge(result: UnitResult, res: process.Result, reporter) -> None:
    """No tests, a failing test, coverage under the floor: CheckFailed, in that order."""
    counts = result.counts
    if res.returncode == 5 or counts.tests == 0:
        raise CheckFailed(f"service unit tests: no tests ran in {result.path}")
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
        raise CheckFailed(
            f"service unit tests: {result.coverage_line()}",
            f"add tests, or lower tests.coverage_floor in stageflow.toml; see {result.coverage_xml}",
        )

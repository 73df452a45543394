"""The service's integration suite against a deployed environment.

The suite gets the target in its environment: ``SERVICE_URL`` (the front door's HTTP base URL: in local
mode the emulator's loopback front door, on AWS API Gateway's stage, or ``environments.NAME.tests.url``
when set) and ``SERVICE_FUNCTION`` / ``SERVICE_ALIAS`` (the function behind it, from the outputs).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from stageflow import process
from stageflow.checks.suite import (
    INTEGRATION_JUNIT,
    SuiteCounts,
    child_env,
    make_reports_dir,
    parse_junit,
    pytest_argv,
    run_tool,
    shown,
    suite_dir,
    tail,
)
from stageflow.checks.target import ServiceTarget
from stageflow.config import Config
from stageflow.errors import CheckFailed
from stageflow.testenv import collection_errors


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


def run_integration(
    config: Config,
    env_name: str,
    target: ServiceTarget,
    reporter=None,
    *,
    reports_dir: Path | None = None,
    runner: process.Runner = process.RUNNER,
    extra_args: Sequence[str] = (),
) -> SuiteResult:
    """The service's integration suite against ``target``; JUnit in
    ``reports/junit-service-integration-ENV.xml``, its output in ``reports/service-integration-ENV.log``."""
    config.env(env_name)
    suite = suite_dir(config, config.tests.integration, "integration")
    out = make_reports_dir(config, reports_dir)
    junit = out / INTEGRATION_JUNIT.format(env=env_name)
    log = out / f"service-integration-{env_name}.log"
    junit.unlink(missing_ok=True)
    t0 = time.monotonic()
    env = child_env(config, {"STAGEFLOW_ENV": env_name, **target.env()})
    res = run_tool(runner, pytest_argv(config, suite, junit, *extra_args), cwd=config.root, env=env)
    log.write_text(res.stdout + res.stderr, encoding="utf-8")
    counts = parse_junit(junit)
    result = SuiteResult(
        env_name,
        shown(suite, config.root),
        target.where,
        counts,
        shown(junit, config.root),
        shown(log, config.root),
        time.monotonic() - t0,
        res.returncode,
    )
    if reporter is not None:
        reporter.info("integration", env_name, f"{result.summary} (report: {result.junit})")
    errors = collection_errors(f"{res.stdout}\n{res.stderr}")
    if errors:  # an ImportError in a conftest is pytest's exit 4, not "no tests"
        if reporter is not None:
            for line in errors:
                reporter.info("integration", "pytest", line)
        raise CheckFailed(
            f"service integration tests could not be collected: {' — '.join(errors[:2])}",
            f"the integration suite runs in stageflow's environment (docs/testing.md); see {result.log}",
        )
    if res.returncode == 5 or counts.tests == 0:
        raise CheckFailed(f"service integration tests: no tests ran in {result.path}", f"see {result.log}")
    if not result.ok:
        if reporter is not None:
            for line in tail(res.stdout):
                reporter.info("integration", "pytest", line)
        first = counts.failed_names[0] if counts.failed_names else f"pytest exit {res.returncode}"
        raise CheckFailed(
            f"service integration tests failed on {env_name}: {counts.failures + counts.errors} of "
            f"{counts.tests} failed (first: {first})",
            f"see {result.log}",
        )
    return result

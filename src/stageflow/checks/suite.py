"""Running one of the service's pytest suites and reading what it wrote (JUnit, Cobertura).

The convention (paths in ``[tests]`` of stageflow.toml, relative to the repository root): the unit suite
in ``app/tests/unit``, the integration suite in ``app/tests/integration``; reports go to ``reports/``
under fixed names the CI configurations publish (buildspecs/*.yml, .github/workflows/*.yml).
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET  # noqa: S405 # nosec B405 - our own pytest/coverage reports
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stageflow import process
from stageflow.config import Config
from stageflow.errors import UsageError

REPORTS = "reports"
UNIT_JUNIT = "junit-service-unit.xml"
UNIT_COVERAGE = "coverage-service.xml"
INTEGRATION_JUNIT = "junit-service-integration-{env}.xml"
SUITE_TIMEOUT = 1800.0


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
    """The total coverage in percent of a Cobertura XML file as coverage.py counts it (lines, plus
    branches when branch coverage is on), or None when there is none."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314 # nosec B314 - a file our own child wrote
    except (OSError, ET.ParseError):
        return None
    try:
        valid = int(root.get("lines-valid", "")) + int(root.get("branches-valid", "0"))
        covered = int(root.get("lines-covered", "")) + int(root.get("branches-covered", "0"))
    except ValueError:
        rate = root.get("line-rate")
        return round(float(rate) * 100, 2) if rate is not None else None
    return round(100.0 * covered / valid, 2) if valid else 100.0


def make_reports_dir(config: Config, reports_dir: Path | None) -> Path:
    out = Path(reports_dir) if reports_dir is not None else config.root / REPORTS
    out.mkdir(parents=True, exist_ok=True)
    return out


def shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def suite_dir(config: Config, rel: str, what: str) -> Path:
    path = (config.root / rel).resolve()
    if not path.is_dir():
        raise UsageError(
            f"no service {what} tests at {rel}", f"the convention: {config.service.source}/tests/{what}"
        )
    return path


def pytest_argv(
    config: Config, suite: Path, junit: Path, *extra: str, python: str | Path = sys.executable
) -> list[str]:
    app = (config.root / config.service.source).resolve()
    argv = [str(python), "-m", "pytest", str(suite), f"--junitxml={junit}", "-q", "--rootdir", str(app)]
    ini = app / "tests" / "pytest.ini"
    argv += ["-c", str(ini)] if ini.is_file() else ["-p", "no:cacheprovider"]
    return [*argv, *extra]


def child_env(config: Config, extra: Mapping[str, str] | None = None) -> dict[str, str]:
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


def run_tool(
    runner: process.Runner, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]
) -> process.Result:
    """A suite or a linter to its end, whatever its exit code (the caller reads it). A missing binary or
    the suite timeout is an environment failure (exit 3)."""
    return runner(argv, cwd=cwd, timeout=SUITE_TIMEOUT, env=env, ok_codes=None)


def tail(text: str, lines: int = 12) -> list[str]:
    return [ln for ln in text.strip().splitlines()[-lines:] if ln.strip()]

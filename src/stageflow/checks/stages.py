"""The checks as stages of ``pipeline.deploy``: each returns a frozen result with ``summary`` and
``to_json()`` (``pipeline.run_stage``). lint and unit run before the build; smoke, integration and load
after the canary (production: once promoted — while the canary awaits an approval they say so and wait).

The stages take plain inputs: the config, the environment's name, the reporter, ``open_endpoint`` (opens
where the deployed service answers, see :mod:`stageflow.checks.target`; integration and load),
``check_alias`` (smoke: the pre-traffic check's invocation, through the alias) and ``record`` (attaches a
result to the environment's latest deployment, see :func:`record_in_history`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stageflow.checks.integration import run_integration
from stageflow.checks.lint import LintResult, run_lint
from stageflow.checks.load import run_load
from stageflow.checks.target import OpenEndpoint, service_target
from stageflow.checks.unit import UnitResult, run_unit
from stageflow.config import Config
from stageflow.errors import CheckFailed, UsageError
from stageflow.ports import CheckOutcome

SKIP_ENV = "STAGEFLOW_SKIP_SERVICE_TESTS"
WAITING = "not yet: the canary awaits approval (runs after the promotion)"
Record = Callable[[str, dict], "str | None"]  # (key, value) → the deployment id it was recorded in


@dataclass(frozen=True)
class CheckResult:
    summary: str
    data: Mapping = field(default_factory=dict)

    def to_json(self) -> dict:
        return dict(self.data)


def record_in_history(history, key: str, value: dict) -> str | None:
    """Attach a result to the latest deployment record of ``history``; None when it has none."""
    latest = history.list(limit=1)
    if not latest:
        return None
    dep = latest[0]
    history.update(dep, extra={**dep.extra, key: value})
    return dep.deployment_id


def skipped_here(name: str) -> str | None:
    """``STAGEFLOW_SKIP_SERVICE_TESTS=integration,load``: CodeBuild's deploy project leaves these to the
    pipeline's own test actions (buildspecs/integration.yml), which publish their reports."""
    names = {n.strip() for n in os.environ.get(SKIP_ENV, "").split(",") if n.strip()}
    return f"skipped here ({SKIP_ENV}: the pipeline runs it as its own action)" if name in names else None


def stage_service_lint(config: Config, reporter) -> LintResult:
    return run_lint(config, reporter)


def stage_service_unit(config: Config, reporter, cache_dir: Path | None = None) -> UnitResult:
    """The service's unit tests in its own test environment, cached under ``cache_dir`` (the state
    directory's ``cache/testenv``)."""
    return run_unit(config, reporter, cache_dir=cache_dir)


def stage_smoke(
    env_name: str, check_alias: Callable[[], CheckOutcome], record: Record, *, paused: bool = False
) -> CheckResult:
    """The pre-traffic check again, after promotion, through the alias (``[service] smoke``): the same
    invocation in both modes (the emulator's local runtime runs the deployed zip)."""
    if paused:
        return CheckResult(WAITING, {"skipped": True})
    res = check_alias()
    record("smoke", res.to_json())
    if not res.ok:
        raise CheckFailed(f"smoke check failed: {res.line()}", f"stageflow status {env_name}")
    return CheckResult(res.line(), res.to_json())


def stage_integration(
    config: Config,
    env_name: str,
    reporter,
    open_endpoint: OpenEndpoint,
    record: Record,
    *,
    paused: bool = False,
) -> CheckResult:
    env = config.env(env_name)
    if not env.tests.integration:
        return CheckResult("not configured for this environment", {"skipped": True})
    if why := skipped_here("integration"):
        return CheckResult(why, {"skipped": True})
    if paused:
        return CheckResult(WAITING, {"skipped": True})
    region = config.service.region
    with service_target(open_endpoint, tests_url=env.tests.url, region=region) as target:
        res = run_integration(config, env_name, target, reporter)
    record("integration", {"ok": res.ok, "tests": res.counts.tests, "junit": res.junit})
    return CheckResult(res.summary, res.to_json())


def stage_load(
    config: Config,
    env_name: str,
    reporter,
    open_endpoint: OpenEndpoint,
    record: Record,
    *,
    paused: bool = False,
) -> CheckResult:
    env = config.env(env_name)
    if not env.tests.load:
        return CheckResult("not configured for this environment", {"skipped": True})
    if why := skipped_here("load"):
        return CheckResult(why, {"skipped": True})
    if paused:
        return CheckResult(WAITING, {"skipped": True})
    region = config.service.region
    with service_target(open_endpoint, tests_url=env.tests.url, region=region) as target:
        if not target.url:
            raise UsageError(
                f"load test on {env_name} needs the service's HTTP endpoint",
                f"the environment root's url output (modules/front_door), environments.{env_name}.tests.url, "
                "or tests.load = false",
            )
        res = run_load(config, env_name, target.url, reporter, record=lambda data: record("load", data))
    return CheckResult(f"{res.result.detail}: within the gates ({res.html})", res.to_json())

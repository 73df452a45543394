"""The decision package of an approval notice (issue 26 item 3): what a person needs to answer a pause,
from the deployment record alone — the service tests' result, the security gate's summary, the plan
summary (the pipeline's stage lines, ``extra.pipeline``; ``extra.security``), the canary's numbers so far
(the last verdict's gate lines, per function when there are several), the deadline and what it does —
plus the links the composition root makes (the HTML report behind a presigned URL, the dashboard).

Pure and standard library only; :func:`lines` is the text Slack shows, :func:`package` the SNS data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stageflow.deploy.records import Deployment, State

TEST_STAGES = ("lint", "unit", "integration", "load")
NOT_RUN = "not run in this deployment (a canary started outside `stageflow deploy`)"


def _stages(dep: Deployment) -> dict[str, Mapping[str, Any]]:
    return {s.get("stage"): s for s in dep.extra.get("pipeline") or () if isinstance(s, Mapping)}


def _stage_line(stage: Mapping[str, Any] | None) -> str:
    if stage is None:
        return NOT_RUN
    return f"{'passed' if stage.get('ok') else 'FAILED'}: {stage.get('summary') or ''}".rstrip(": ")


def _tests(dep: Deployment) -> dict[str, str]:
    stages = _stages(dep)
    found = {name: _stage_line(stages[name]) for name in TEST_STAGES if name in stages}
    return found or {"tests": NOT_RUN}


def _security(dep: Deployment) -> str:
    report = dep.extra.get("security")
    if isinstance(report, Mapping) and report.get("scanners"):
        scanners = ", ".join(f"{k} {v}" for k, v in dict(report["scanners"]).items())
        return f"{'passed' if report.get('passed', True) else 'FAILED'} ({scanners})"
    return _stage_line(_stages(dep).get("security"))


def _canary(dep: Deployment) -> dict[str, list[str]]:
    """The last verdict's gate lines, keyed by function (``""`` for a one-function service)."""
    if not dep.verdicts:
        return {}
    last = dep.verdicts[-1]
    out: dict[str, list[str]] = {}
    for r in last.get("results") or ():
        detail = r.get("detail") or f"{r.get('name')}: {r.get('status', '')}"
        out.setdefault(str(r.get("function") or ""), []).append(detail)
    if not out:
        out[""] = [f"{last.get('decision')} at {last.get('weight')}%: {'; '.join(last.get('reasons') or ())}"]
    return out


def package(dep: Deployment, state: State, links: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """The decision package of ``dep`` paused in ``state`` (a notice's ``decision`` data)."""
    then = "rejected" if state.approval_for == "before_canary" else "rolled back"
    return {
        "pause": state.approval_for,
        "weight": state.weight,
        "deadline": state.deadline,
        "at_deadline": then,
        "tests": _tests(dep),
        "security": _security(dep),
        "plan": _stage_line(_stages(dep).get("infrastructure")),
        "plan_sha256": dep.plan_hash or None,
        "canary": _canary(dep),
        "report_url": (links or {}).get("report_url"),
        "dashboard_url": (links or {}).get("dashboard_url"),
        "links_problem": (links or {}).get("problem"),
    }


def lines(pkg: Mapping[str, Any]) -> list[str]:
    """The package as the lines of a chat message."""
    out = [f"deadline: {pkg.get('deadline')} (then {pkg.get('at_deadline')})"]
    out += [f"tests, {name}: {line}" for name, line in (pkg.get("tests") or {}).items()]
    out.append(f"security: {pkg.get('security')}")
    out.append(f"plan: {pkg.get('plan')}")
    for key, details in (pkg.get("canary") or {}).items():
        out += [f"canary{' ' + key if key else ''}: {d}" for d in details]
    if not pkg.get("canary"):
        out.append("canary: no traffic yet")
    for name in ("report_url", "dashboard_url"):
        if pkg.get(name):
            out.append(f"{name.replace('_url', '')}: {pkg[name]}")
    if pkg.get("links_problem"):
        out.append(f"links: {pkg['links_problem']}")
    return out


def report_key(dep: Deployment, state: State) -> str:
    """Where a pause's report goes in the report bucket."""
    pause = (state.approval_for or "pause").replace(":", "-")
    return f"stageflow-reports/{dep.service}/{dep.environment}/{dep.deployment_id}/{pause}.html"

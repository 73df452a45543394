"""A blameless post-mortem draft in Markdown, generated from an incident and the deployment it ended:
what the records know is filled in (timeline, impact, detection with the verdict's numbers, response),
what only people know is left as prompts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stageflow.incidents.model import Incident


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "not restored (the rollback failed: see the timeline)"
    return f"{seconds / 60:.1f} min"


def _numbers(verdict: Mapping[str, Any]) -> list[str]:
    rows = []
    for r in verdict.get("results") or ():

        def num(x):
            return "—" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)

        rows.append(
            f"| {r.get('metric')} ({r.get('kind')}) | {num(r.get('observed'))} | {num(r.get('baseline'))} "
            f"| {num(r.get('threshold'))} | {r.get('canary_count', 0)} / {r.get('stable_count', 0)} "
            f"| {r.get('outcome')} |"
        )
    if not rows:
        return ["No gate numbers were recorded for this rollback."]
    head = "| check | canary | stable | limit | invocations (canary / stable) | outcome |"
    return [head, "|---|---|---|---|---|---|", *rows]


def _timeline(inc: Incident, deployment) -> list[str]:
    events: list[tuple[str, str]] = []
    if deployment is not None:
        events.append(
            (deployment.started_at, f"deployment {deployment.deployment_id} started by {deployment.who}")
        )
        for t in deployment.transitions:
            weight = f" at {t.weight}%" if t.weight is not None else ""
            events.append((t.at, f"{t.from_phase} → {t.to_phase}{weight}: {t.reason}".rstrip(": ")))
    if inc.impact_start:
        events.append((inc.impact_start, f"v{inc.bad_version} first took traffic"))
    events.append((inc.opened_at, f"rollback ({inc.trigger}) by {inc.who}: {inc.reason}"))
    if inc.restored_at:
        events.append((inc.restored_at, f"all traffic on v{inc.restored_version}"))
    seen, lines = set(), []
    for at, what in sorted(events):
        if (at, what) not in seen:
            seen.add((at, what))
            lines.append(f"- `{at}` {what}")
    return lines


def render(inc: Incident, deployment=None) -> str:
    """The draft for ``inc``; ``deployment``: the record of the deployment it ended, when there is one."""
    v = inc.verdict or {}
    lines = [
        f"# Post-mortem (draft): {inc.service} {inc.environment} — rollback of v{inc.bad_version or '?'}",
        "",
        f"Incident `{inc.key}` · opened {inc.opened_at} · post-mortem due {inc.postmortem_due} · blameless",
        "",
        "## Summary",
        f"Traffic of {inc.service} in {inc.environment} was rolled back from v{inc.bad_version or '?'} to "
        f"v{inc.restored_version or '?'} ({inc.trigger}): {inc.reason}.",
        "",
        "## Impact",
        f"- Version with the problem: v{inc.bad_version or '?'}"
        + (f" (deployment `{inc.deployment_id}`)" if inc.deployment_id else ""),
        f"- Impact began: {inc.impact_start or 'unknown'}; restored: {inc.restored_at or 'not restored'}",
        f"- Time to restore: {_minutes(inc.time_to_restore_s)}",
        "- Users affected: _fill in_",
        "",
        "## Detection",
        f"- Trigger: {inc.trigger}; who: {inc.who}",
    ]
    if v:
        lines.append(f"- Last verdict ({v.get('at')}): {v.get('decision')} at {v.get('weight')}%")
        lines += [f"  - {r}" for r in v.get("reasons") or ()]
    lines += ["", *_numbers(v), "", "## Timeline (UTC)", *_timeline(inc, deployment)]
    lines += [
        "",
        "## Root cause",
        "_What changed, and why did it fail? (no names: systems and decisions, not people)_",
        "",
        "## What went well / what did not",
        "- _fill in_",
        "",
        "## Action items",
        "- [ ] _owner — action — due date_",
        "",
    ]
    return "\n".join(lines)

"""``service-deps``: what the service ships against an advisory source (pip-audit by default).

``fail`` on a high, critical or unrated advisory; ``info`` with detail ``not_audited`` or
``partially_audited`` — loudly, never a pass — when no source answers (offline) or a package cannot be
checked; ``pass`` when all were checked, or nothing ships.
"""

from __future__ import annotations

import dataclasses
import time

from stageflow.security.interface import (
    AdvisorySourceUnavailable,
    AuditOutcome,
    Finding,
    GateContext,
    ScanResult,
    Status,
)
from stageflow.security.packages import ShippedPackages, shipped_packages
from stageflow.security.pip_audit import PipAuditSource


class ServiceDeps:
    name = "service-deps"

    def cache_key(self, ctx: GateContext) -> None:
        return None  # an advisory database changes without any input changing

    def scan(self, ctx: GateContext) -> ScanResult:
        t0 = time.monotonic()
        if not (ctx.root / ctx.service_source).is_dir() and ctx.artifact is None:
            return ScanResult("service-deps", Status.SKIPPED, f"no {ctx.service_source} directory")
        shipped = shipped_packages(ctx.root, ctx.service_source, ctx.artifact)
        where = " and ".join(shipped.sources) or f"no {ctx.service_source}/requirements.txt"
        pkgs = shipped.packages
        counts = {"packages": len(pkgs), "unpinned": len(shipped.unpinned), "audited": 0, "advisories": 0}
        if not pkgs and not shipped.unpinned:
            summary = f"no third-party packages ship with the service ({where})"
            return ScanResult(
                "service-deps",
                Status.PASS,
                summary,
                counts,
                duration_s=time.monotonic() - t0,
                detail="nothing_to_audit",
            )
        source = ctx.advisory_source or PipAuditSource(ctx)
        try:
            outcome = source.audit(pkgs) if pkgs else AuditOutcome(frozenset())
        except AdvisorySourceUnavailable as exc:
            summary = (
                f"NOT AUDITED: {len(pkgs) + len(shipped.unpinned)} shipped packages ({where}) could not be "
                f"checked: {exc}; this is not a pass"
            )
            return ScanResult(
                "service-deps",
                Status.INFO,
                summary,
                counts,
                duration_s=time.monotonic() - t0,
                detail="not_audited",
            )
        result = judge(shipped, outcome, counts, where, source.name)
        return dataclasses.replace(result, duration_s=time.monotonic() - t0)


def judge(
    shipped: ShippedPackages, outcome: AuditOutcome, counts: dict[str, int], where: str, via: str
) -> ScanResult:
    """What a source answered, judged: blocking advisories fail; unchecked packages are no pass."""
    pkgs = shipped.packages
    advisories = outcome.advisories
    blocking = [a for a in advisories if a.blocking]
    counts = {
        **counts,
        "audited": len(outcome.audited),
        "advisories": len(advisories),
        "blocking": len(blocking),
    }
    findings = tuple(
        Finding(
            a.id,
            a.severity or "unrated",
            f"{a.package} {a.version}",
            "fix: " + (", ".join(a.fix_versions) or "none known"),
        )
        for a in sorted(advisories, key=lambda a: not a.blocking)
    )
    missing = [p.name for p in pkgs if p.name not in outcome.audited] + list(shipped.unpinned)
    if blocking:
        summary = f"{len(blocking)} high/critical advisories in what ships ({where}; via {via})"
        return ScanResult("service-deps", Status.FAIL, summary, counts, findings, detail="audited")
    if missing:
        summary = (
            f"NOT AUDITED: {len(missing)} of {len(pkgs) + len(shipped.unpinned)} shipped packages could "
            f"not be checked ({', '.join(missing[:5])}); {len(advisories)} lower advisories; not a pass"
        )
        return ScanResult("service-deps", Status.INFO, summary, counts, findings, detail="partially_audited")
    summary = (
        f"{len(pkgs)} shipped packages audited via {via}: no high/critical advisories "
        f"({len(advisories)} lower)"
    )
    return ScanResult("service-deps", Status.PASS, summary, counts, findings, detail="audited")

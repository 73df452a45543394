"""pip-audit, run one way: exact pins (``-r FILE --no-deps --disable-pip``), JSON out.

Two users: the ``pip-audit`` scanner (stageflow's runtime closure; information only, never a pass) and
:class:`PipAuditSource`, the default advisory source of ``service-deps``. Offline pip-audit reaches no
advisory database, marks every package "not audited" and exits 0.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stageflow import process
from stageflow.security.interface import (
    Advisory,
    AdvisorySourceUnavailable,
    AuditOutcome,
    CacheKey,
    Finding,
    GateContext,
    Package,
    ScanResult,
    Status,
    child_env,
    load_json,
)
from stageflow.security.packages import norm, runtime_closure


def run_pip_audit(ctx: GateContext, packages: Sequence[Package]) -> tuple[Mapping[str, Any], process.Result]:
    """pip-audit's JSON report over ``packages`` pinned exactly, and the run that wrote it."""
    exe = ctx.require("pip-audit")
    with tempfile.TemporaryDirectory(prefix="stageflow-pip-audit-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text("".join(f"{p.name}=={p.version}\n" for p in packages), encoding="utf-8")
        out = Path(tmp) / "pip-audit.json"
        argv = [exe, "-r", str(req), "--no-deps", "--disable-pip", "--progress-spinner", "off"]
        argv += ["--timeout", "15", "-f", "json", "-o", str(out)]
        res = ctx.run(argv, ok=(0, 1), env=child_env())
        data = load_json(out.read_text(encoding="utf-8") if out.exists() else res.stdout, "pip-audit")
    return data, res


class PipAudit:
    """Information only. Offline every package is "not audited": ``not_audited``, never a pass."""

    name = "pip-audit"

    def cache_key(self, ctx: GateContext) -> CacheKey | None:
        exe = ctx.which("pip-audit")
        if exe is None:
            return None
        _, packages = runtime_closure()  # what it audits: the installed runtime packages
        return CacheKey(exe, "pip-audit", (), " ".join(f"{p.name}=={p.version}" for p in packages))

    def scan(self, ctx: GateContext) -> ScanResult:
        _, packages = runtime_closure()
        data, res = run_pip_audit(ctx, packages)
        return interpret_pip_audit(data, res.duration_s, res.argv)


def interpret_pip_audit(data: Mapping[str, Any], duration_s: float = 0.0, argv=()) -> ScanResult:
    deps = data.get("dependencies") or []
    not_audited = [d for d in deps if "skip_reason" in d]
    audited = [d for d in deps if "skip_reason" not in d]
    versions = {d.get("name"): str(d.get("version", "")) for d in reversed(audited)}
    vulns = [(d.get("name"), v) for d in audited for v in d.get("vulns") or []]
    findings = tuple(
        Finding(
            str(v.get("id")),
            "vulnerability",
            f"{name} {versions.get(name, '')}",
            "fix: " + (", ".join(v.get("fix_versions") or []) or "none known"),
        )
        for name, v in vulns
    )
    counts = {
        "packages": len(deps),
        "audited": len(audited),
        "not_audited": len(not_audited),
        "vulnerabilities": len(vulns),
    }
    if not audited:
        detail = "not_audited"
        summary = (
            f"not audited: 0 of {len(deps)} runtime packages could be checked (no advisory database "
            "reachable); information only, not a pass"
        )
    else:
        detail = "audited" if not not_audited else "partially_audited"
        summary = (
            f"{len(audited)} of {len(deps)} runtime packages audited, {len(vulns)} known vulnerabilities"
            " (information only)"
        )
    return ScanResult("pip-audit", Status.INFO, summary, counts, findings, duration_s, detail, tuple(argv))


class PipAuditSource:
    """pip-audit as an advisory source. Offline it reaches no database: that raises
    :class:`AdvisorySourceUnavailable`. pip-audit does not report severities, so its advisories have
    ``severity=None`` (treated as blocking)."""

    name = "pip-audit"

    def __init__(self, ctx: GateContext):
        self.ctx = ctx

    def audit(self, packages: Sequence[Package]) -> AuditOutcome:
        data, _ = run_pip_audit(self.ctx, packages)
        audited = [d for d in data.get("dependencies") or [] if "skip_reason" not in d]
        if not audited:
            raise AdvisorySourceUnavailable("pip-audit reached no advisory database")
        advisories = tuple(
            Advisory(
                str(v.get("id")),
                norm(str(d.get("name"))),
                str(d.get("version", "")),
                None,
                tuple(v.get("fix_versions") or ()),
            )
            for d in audited
            for v in d.get("vulns") or []
        )
        return AuditOutcome(frozenset(norm(str(d.get("name"))) for d in audited), advisories)

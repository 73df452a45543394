"""``trivy image`` over the service's container image (``stageflow security --image REF``): known
vulnerabilities of its OS packages and Python packages from trivy's vulnerability database.

Only with a database on this machine (trivy's cache: ``TRIVY_CACHE_DIR`` or ``~/.cache/trivy``; the
image project downloads it first with ``trivy image --download-db-only``): the scan then runs offline
(``--skip-db-update --offline-scan``) and fails on HIGH or CRITICAL vulnerabilities that have a fix.
Without a database, or without trivy, the result is ``skipped/not_scanned``: it never counts as a pass
(``--require-image-scan``, which the pipeline's image project passes, turns it into a failure)."""

from __future__ import annotations

import os
from pathlib import Path

from stageflow.security.interface import (
    CacheKey,
    Finding,
    GateContext,
    ScanResult,
    Status,
    child_env,
    load_json,
)

NOT_SCANNED = "not_scanned"
SEVERITIES = "HIGH,CRITICAL"


def trivy_cache_dir() -> Path:
    configured = os.environ.get("TRIVY_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trivy"


def vulnerability_db(cache_dir: Path) -> Path | None:
    db = cache_dir / "db" / "trivy.db"
    return db if db.is_file() and db.stat().st_size > 0 else None


class ImageScan:
    name = "image"

    def cache_key(self, ctx: GateContext) -> CacheKey | None:
        return None  # the answer depends on the image and on the day's database: never cached

    def scan(self, ctx: GateContext) -> ScanResult:
        if not ctx.image:
            return ScanResult(self.name, Status.SKIPPED, "no image given (stageflow security --image REF)")
        exe = ctx.which("trivy")
        if exe is None:
            return ScanResult(
                self.name,
                Status.SKIPPED,
                f"{ctx.image}: not scanned: trivy not available",
                detail=NOT_SCANNED,
            )
        cache = ctx.trivy_cache or trivy_cache_dir()
        if vulnerability_db(cache) is None:
            return ScanResult(
                self.name,
                Status.SKIPPED,
                f"{ctx.image}: not scanned: no vulnerability database in {cache} "
                "(trivy image --download-db-only where the network allows)",
                detail=NOT_SCANNED,
            )
        argv = [exe, "image", "--cache-dir", str(cache), "--skip-db-update", "--skip-java-db-update"]
        argv += ["--offline-scan", "--quiet", "--format", "json", "--scanners", "vuln"]
        argv += ["--severity", SEVERITIES, "--ignore-unfixed", ctx.image]
        res = ctx.run(argv, env=child_env(("TF_",)))
        data = load_json(res.stdout, "trivy image")
        findings = [
            Finding(
                str(v.get("VulnerabilityID")),
                str(v.get("Severity", "?")).lower(),
                f"{r.get('Target')}: {v.get('PkgName')} {v.get('InstalledVersion')}",
                f"fixed in {v.get('FixedVersion')}: {v.get('Title') or ''}".strip(),
            )
            for r in data.get("Results") or []
            for v in r.get("Vulnerabilities") or []
        ]
        counts = {"vulnerabilities": len(findings), "targets": len(data.get("Results") or [])}
        if findings:
            summary = (
                f"{ctx.image}: {len(findings)} fixable {SEVERITIES.lower().replace(',', '/')} vulnerabilities"
            )
            return ScanResult(
                self.name, Status.FAIL, summary, counts, tuple(findings), res.duration_s, command=res.argv
            )
        summary = f"{ctx.image}: no fixable high/critical vulnerabilities in {counts['targets']} targets"
        return ScanResult(self.name, Status.PASS, summary, counts, (), res.duration_s, command=res.argv)

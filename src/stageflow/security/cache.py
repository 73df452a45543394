"""The content cache: a scanner's last result, kept by a digest of everything that decides it.

A scanner's result is a function of what it reads, the tool that reads it and how we run and judge it.
The fingerprint is a digest over exactly that: every input file (path and content), the tool's
executable (path, size, mtime) and distribution version, anything else the scanner names (pip-audit:
the pins it audits), and the gate's own source (argv, policy, baselines' interpretation). Same
fingerprint → the stored result, pass or FAIL alike; any change → the scanner runs again. A scanner that
could not run (``error``) is never stored.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from stageflow.security.interface import CacheKey, ScanResult, Status

CACHE_VERSION = 1
_DIGEST_SKIP_DIRS = {"__pycache__", ".terraform", ".pytest_cache", ".ruff_cache"}
# written by Terraform itself (`init`'s provider lock) or by stageflow for one run (the emulator's provider
# override): not the code under review, and they come and go between two scans of the same tree
_DIGEST_SKIP_FILES = {".terraform.lock.hcl", "stageflow_local_override.tf"}


def tree_files(base: Path) -> list[Path]:
    """Every file under ``base`` a scanner's verdict can depend on (caches and bytecode left out)."""
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


@functools.cache
def _gate_source_digest() -> bytes:
    """The gate's own code: a change of policy (argv, exclusions, judging) invalidates every entry."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.digest()


def _tool_identity(key: CacheKey) -> str:
    from importlib import metadata

    try:
        version = metadata.version(key.distribution)
    except metadata.PackageNotFoundError:
        version = "?"
    st = os.stat(key.executable)
    ident = (
        f"{os.path.realpath(key.executable)}\0{st.st_size}\0{st.st_mtime_ns}\0{key.distribution} {version}"
    )
    return ident + (f"\0{key.extra}" if key.extra else "")


def fingerprint(name: str, key: CacheKey, root: Path) -> str:
    """The cache key of scanner ``name`` over ``root``."""
    h = hashlib.sha256()
    h.update(f"stageflow-security-cache {CACHE_VERSION}\0{name}\0{_tool_identity(key)}\0".encode())
    h.update(_gate_source_digest())
    for path in key.inputs:
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
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

"""Package a Python service directory as a Lambda zip, reproducibly.

The same source gives the same bytes (sorted entries, fixed timestamps and modes), so the zip's
SHA-256 (base64, as Lambda reports ``CodeSha256``) tells whether there is anything new to deploy.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stageflow.errors import UsageError

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
EXCLUDE_DIRS = {"__pycache__", ".pytest_cache", "tests", ".mypy_cache", ".ruff_cache"}
EXCLUDE_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class LambdaZip:
    data: bytes
    code_sha256: str  # base64 of the SHA-256 digest, as Lambda's CodeSha256
    hexdigest: str
    files: int

    @property
    def digest(self) -> str:
        return f"sha256:{self.hexdigest}"


def package(source_dir: str | Path) -> LambdaZip:
    src = Path(source_dir)
    if not src.is_dir():
        raise UsageError(
            f"service source {str(src)!r} is not a directory", "set service.source in stageflow.toml"
        )
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDE_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(EXCLUDE_SUFFIXES) or name.startswith("."):
                continue
            path = Path(dirpath) / name
            entries.append((path.relative_to(src).as_posix(), path))
    if not any(arc.endswith(".py") for arc, _ in entries):
        raise UsageError(
            f"service source {str(src)!r} has no Python files", "set service.source in stageflow.toml"
        )
    return zip_files({arc: path.read_bytes() for arc, path in entries})


def zip_files(files: Mapping[str, bytes]) -> LambdaZip:
    """A reproducible zip of ``files`` (archive name -> bytes): sorted, fixed times and modes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arc in sorted(files):
            info = zipfile.ZipInfo(arc, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[arc])
    data = buf.getvalue()
    digest = hashlib.sha256(data).digest()
    return LambdaZip(data, base64.b64encode(digest).decode(), digest.hex(), len(files))


def with_files(base: LambdaZip, extra: Mapping[str, bytes]) -> LambdaZip:
    """``base`` plus (or overriding) ``extra`` files, still reproducible."""
    with zipfile.ZipFile(io.BytesIO(base.data)) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    return zip_files({**files, **extra})


def placeholder(handler: str) -> LambdaZip:
    """A stand-in package for a function created before its first deploy: answers 503.

    Infrastructure creates the function with it; the first `stageflow canary` ships the real code as
    a new version, judged against this one."""
    module, _, func = handler.rpartition(".")
    if not module or not func:
        raise UsageError(f"handler {handler!r} must look like 'package.module.function'")
    parts = module.split(".")
    files: dict[str, bytes] = {}
    for i in range(1, len(parts)):
        files["/".join(parts[:i]) + "/__init__.py"] = b""
    files["/".join(parts) + ".py"] = (
        "import json\n\n\n"
        f"def {func}(event, context=None):\n"
        "    return {'statusCode': 503, 'headers': {'content-type': 'application/json'},\n"
        "            'body': json.dumps({'status': 'not deployed yet'})}\n"
    ).encode()
    return zip_files(files)

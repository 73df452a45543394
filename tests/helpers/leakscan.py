"""Search everything a run printed and every file it left for secret values in any common form.

Used by the secrets tests and by the end-to-end deploy test::

    hits = scan_for_values([project_dir, state_dir], {"stdout": out, "stderr": err}, values,
                           exclude=[asked_for_env_file])
    assert not hits, hits

A hit names where (a file path or a text's label), which value (by index, never the value itself) and
which form (raw, base64, url, json, ...), so a failing assertion does not print the secret.

Zip files (Terraform saved plans are zips whose members are deflated) are searched member by member
as well, reported as ``path!member``: a plan made with ``TF_VAR_*`` values holds them in
``tfplan`` and the values never show in the compressed bytes of the file itself.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

SKIP_DIRS = frozenset({".git", "__pycache__", ".venv", ".nox", ".pytest_cache"})


@dataclass(frozen=True)
class Hit:
    where: str  # a file path, or the label of a text (e.g. "stdout")
    value_index: int  # which of the values (0-based): the value itself is never shown
    form: str  # raw, base64, base64-unpadded, base64-url, url, url-plus, json, json-ascii
    offset: int

    def __str__(self) -> str:
        return f"{self.where}@{self.offset}: value #{self.value_index} ({self.form})"


def forms(value: str) -> dict[str, bytes]:
    """The forms searched for, by name. Independent of stageflow.redact on purpose: the scan checks
    the redactor, so it must not share its code."""
    raw = value.encode()
    b64 = base64.b64encode(raw).decode()
    out = {
        "raw": value,
        "base64": b64,
        "base64-unpadded": b64.rstrip("="),
        "base64-url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "url": urllib.parse.quote(value, safe=""),
        "url-path": urllib.parse.quote(value),
        "url-plus": urllib.parse.quote_plus(value),
        "json": json.dumps(value, ensure_ascii=False)[1:-1],
        "json-ascii": json.dumps(value)[1:-1],
    }
    return {name: text.encode() for name, text in out.items()}


def _files(paths: Iterable[str | os.PathLike], exclude: set[Path]) -> Iterable[Path]:
    for p in paths:
        p = Path(p)
        if p.is_file():
            if p.resolve() not in exclude:
                yield p
            continue
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for name in filenames:
                f = Path(dirpath) / name
                if f.is_file() and not f.is_symlink() and f.resolve() not in exclude:
                    yield f


def _search(data: bytes, where: str, value_forms: list[dict[str, bytes]]) -> list[Hit]:
    hits = []
    for i, fs in enumerate(value_forms):
        seen: set[bytes] = set()
        for name, form in fs.items():
            if form in seen or not form:
                continue
            seen.add(form)
            at = data.find(form)
            if at != -1:
                hits.append(Hit(where, i, name, at))
    return hits


def scan_for_values(
    paths: Iterable[str | os.PathLike],
    texts: Mapping[str, str | bytes],
    values: Iterable[str],
    *,
    exclude: Iterable[str | os.PathLike] = (),
) -> list[Hit]:
    """Every occurrence (first per file and form) of each value in the texts and under the paths."""
    value_forms = [forms(v) for v in values]
    excluded = {Path(e).resolve() for e in exclude}
    hits: list[Hit] = []
    for label, text in texts.items():
        data = text.encode() if isinstance(text, str) else text
        hits += _search(data, label, value_forms)
    for f in _files(paths, excluded):
        try:
            data = f.read_bytes()
        except OSError:
            continue
        hits += _search(data, str(f), value_forms)
        if data[:4] == b"PK\x03\x04":
            hits += _search_zip(f, value_forms)
    return hits


def _search_zip(path: Path, value_forms: list[dict[str, bytes]]) -> list[Hit]:
    hits: list[Hit] = []
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.file_size > 256 * 1024 * 1024:
                    continue
                hits += _search(z.read(info), f"{path}!{info.filename}", value_forms)
    except (zipfile.BadZipFile, OSError, RuntimeError):
        pass
    return hits


# -- what AWS holds, as texts for scan_for_values ------------------------------------------------------
def s3_object_versions(s3, bucket: str) -> dict[str, bytes]:
    """Every version of every object in ``bucket`` (``ListObjectVersions``), labelled
    ``s3://bucket/key?versionId=...``: Terraform state keeps each apply's state as a noncurrent version."""
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
            out[f"s3://{bucket}/{v['Key']}?versionId={v['VersionId']}"] = body
    return out


def function_configurations(lam, function: str) -> dict[str, str]:
    """``GetFunctionConfiguration`` of every version of ``function`` ($LATEST included), as JSON text
    labelled ``function:version``."""
    out: dict[str, str] = {}
    for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=function):
        for v in page["Versions"]:
            cfg = lam.get_function_configuration(FunctionName=function, Qualifier=v["Version"])
            out[f"{function}:{v['Version']}"] = json.dumps(cfg, default=str)
    return out

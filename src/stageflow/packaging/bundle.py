"""Build once, deploy many: the Build stage's artifact directory and its manifest of digests.

``stageflow package --out DIR`` (the pipeline's Build stage) writes the zips the environment roots deploy
(the service zip and the rollback zip) into DIR with ``manifest.json``: the SHA-256 of each file, the
service, the commit and the image digest (when the image project built one). Every deploy action then
runs ``stageflow deploy ENV --artifacts DIR`` (or with ``STAGEFLOW_ARTIFACTS=DIR``): :func:`load`
verifies every file against the manifest *before* anything is written, and only then puts the verified
bytes where the Terraform roots read them (``build/lambda/``). Nothing is rebuilt. A missing file or a
digest that differs from the manifest is exit 3 naming the file, and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stageflow.errors import EnvironmentFailure, UsageError
from stageflow.packaging.lambda_zip import ROLLBACK_ZIP, Packages, check_service_zip
from stageflow.ports import LambdaZip

MANIFEST = "manifest.json"
FORMAT = 1
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Bundle:
    """A verified artifact directory: its packages (already in ``build/lambda/``) and its image."""

    directory: Path
    packages: Packages
    image_digest: str | None  # sha256:… of the image the pipeline's image project pushed, if any
    image_uri: str | None
    commit: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "image_digest": self.image_digest,
            "image_uri": self.image_uri,
            "commit": self.commit,
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(
    packages: Packages,
    out_dir: Path,
    *,
    service: str,
    commit: str | None = None,
    image_digest: str | None = None,
    image_uri: str | None = None,
) -> dict[str, Any]:
    """Copy ``packages``' zips into ``out_dir`` and write the manifest; returns the manifest."""
    if image_digest is not None and not _DIGEST.fullmatch(image_digest):
        raise UsageError(f"image digest {image_digest!r} is not sha256:<64 hex digits>")
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    for role, path, z in (
        ("service", packages.paths[0], packages.service),
        ("rollback", packages.paths[1], packages.rollback),
    ):
        (out_dir / path.name).write_bytes(z.data)
        files[path.name] = {"role": role, "sha256": z.hexdigest, "bytes": len(z.data)}
    manifest = {
        "format": FORMAT,
        "service": service,
        "commit": commit,
        "files": files,
        "image": {"digest": image_digest, "uri": image_uri} if image_digest else None,
    }
    tmp = out_dir / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out_dir / MANIFEST)
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of ``directory``, its shape checked (exit 3 when missing or malformed)."""
    if not directory.is_dir():
        raise EnvironmentFailure(
            f"build artifact {directory}: not a directory",
            "the Build stage writes it with `stageflow package --out DIR`",
        )
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EnvironmentFailure(
            f"build artifact {directory}: no {MANIFEST}", "write it with `stageflow package --out DIR`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvironmentFailure(f"build artifact {path}: unreadable: {exc}") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(files, dict):
        raise EnvironmentFailure(f"build artifact {path}: not a format-{FORMAT} manifest")
    for name, entry in files.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
        if not (_NAME.fullmatch(str(name)) and ok and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
            raise EnvironmentFailure(f"build artifact {path}: entry {str(name)[:80]!r} is malformed")
    image = data.get("image")
    if image is not None and not (isinstance(image, dict) and _DIGEST.fullmatch(str(image.get("digest")))):
        raise EnvironmentFailure(f"build artifact {path}: image digest is not sha256:<64 hex digits>")
    return data


def verify(directory: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Every file of the manifest read and checked against its SHA-256: (manifest, name → bytes).
    A missing file or a different digest: exit 3 naming the file."""
    manifest = read_manifest(directory)
    contents: dict[str, bytes] = {}
    for name, entry in sorted(manifest["files"].items()):
        try:
            data = (directory / name).read_bytes()
        except OSError:
            raise EnvironmentFailure(
                f"build artifact {directory}: {name} is missing (listed in {MANIFEST})",
                "deploy the Build stage's artifact as it was written; never rebuild it",
            ) from None
        got = _sha256(data)
        if got != entry["sha256"]:
            raise EnvironmentFailure(
                f"build artifact {directory}: {name} has sha256:{got[:16]}…, the manifest says "
                f"sha256:{entry['sha256'][:16]}…: refusing to deploy it",
                "the file changed after the Build stage: run the pipeline again from Build",
            )
        contents[name] = data
    return manifest, contents


def _zip(name: str, data: bytes) -> LambdaZip:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            count = len(zf.namelist())
    except zipfile.BadZipFile:
        raise EnvironmentFailure(f"build artifact: {name} is not a zip file") from None
    digest = hashlib.sha256(data).digest()
    return LambdaZip(data, base64.b64encode(digest).decode(), digest.hex(), count)


def load(directory: Path, config) -> Bundle:
    """Verify ``directory`` (:func:`verify`) for ``config``'s service, then install its zips where the
    environment roots read them (``build/lambda/``). Nothing is written before everything verified."""
    directory = Path(directory)
    manifest, contents = verify(directory)
    svc = config.service
    if manifest.get("service") != svc.name:
        raise EnvironmentFailure(
            f"build artifact {directory}: built for service {manifest.get('service')!r}, not {svc.name!r}"
        )
    roles = {e.get("role"): name for name, e in manifest["files"].items()}
    for role in ("service", "rollback"):
        if role not in roles:
            raise EnvironmentFailure(f"build artifact {directory}: {MANIFEST} lists no {role} zip")
    service = _zip(roles["service"], contents[roles["service"]])
    rollback = _zip(roles["rollback"], contents[roles["rollback"]])
    checked = check_service_zip(service, svc.runtime, svc.architecture, roles["service"])
    out_dir = config.root / "build" / "lambda"
    paths = (out_dir / f"{svc.name}.zip", out_dir / ROLLBACK_ZIP)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, z in zip(paths, (service, rollback), strict=True):
        if not path.is_file() or path.read_bytes() != z.data:
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(z.data)
            tmp.replace(path)
    image = manifest.get("image") or {}
    packages = Packages(service, rollback, paths, checked=f"{checked}; from the build artifact, verified")
    return Bundle(directory, packages, image.get("digest"), image.get("uri"), manifest.get("commit"))

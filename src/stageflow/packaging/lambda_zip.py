"""Package a Python service directory as a Lambda zip, reproducibly.

The same source gives the same bytes (sorted entries, fixed timestamps and modes), so the zip's
SHA-256 (base64, as Lambda reports ``CodeSha256``) tells whether there is anything new to deploy.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stageflow import process, zipcheck
from stageflow.errors import EnvironmentFailure, UsageError
from stageflow.packaging.requirements import for_target, lambda_environment, read_requirement_lines
from stageflow.packaging.selection import EXCLUDE_SUFFIXES, Selection
from stageflow.ports import LambdaZip  # noqa: F401 - defined with the ports, used here

FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def package(source_dir: str | Path, selection: Selection | None = None) -> LambdaZip:
    """The files of ``source_dir`` that ship (:class:`~stageflow.packaging.selection.Selection`: the
    default exclusions plus ``[service] include`` / ``exclude``) as a reproducible zip."""
    src = Path(source_dir)
    sel = selection or Selection()
    if not src.is_dir():
        raise UsageError(
            f"service source {str(src)!r} is not a directory", "set service.source in stageflow.toml"
        )
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(src).as_posix()
            if sel.ships(rel):
                entries.append((rel, path))
    if not any(arc.endswith(".py") for arc, _ in entries):
        where = " after [service] include/exclude" if sel.include or sel.exclude else ""
        raise UsageError(
            f"service source {str(src)!r} has no Python files{where}",
            "set service.source (and include/exclude) in stageflow.toml",
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
    return zip_files({**_zip_contents(base), **extra})


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


# -- the packages Terraform deploys -----------------------------------------------------------------
# The rollback function's zip: these modules (paths under src/stageflow/) and nothing else. They need
# only the standard library and the Lambda runtime's boto3 (tests/unit/test_rollback_core.py checks the
# import closure; tests/e2e/test_rollback_function.py runs the handler from the extracted zip).
ROLLBACK_MODULES = (
    "__init__.py",
    "errors.py",
    "redact.py",
    "aws.py",
    "isotime.py",
    "history/__init__.py",
    "history/dynamo.py",
    "history/items.py",
    "history/locks.py",
    "incidents/__init__.py",
    "incidents/model.py",
    "notify.py",
    "ports.py",
    "deploy/__init__.py",
    "deploy/records.py",
    "deploy/release.py",
    "deploy/traffic.py",
    "rollback/__init__.py",
    "rollback/core.py",
    "rollback/model.py",
    "rollback/records.py",
    "rollback/restore.py",
    "rollback/handler.py",
    "rollback/several.py",
    "rollback/tick.py",
    "rollback/trigger.py",
)
ROLLBACK_ZIP = "stageflow-rollback.zip"
ROLLBACK_HANDLER = "stageflow.rollback.handler.handler"
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}
_DEPS_EXCLUDE_TOP = {"bin", "__pycache__"}


@dataclass(frozen=True)
class Packages:
    service: LambdaZip
    rollback: LambdaZip
    paths: tuple[Path, Path]  # build/lambda/<service>.zip, build/lambda/stageflow-rollback.zip
    dependencies: int = 0  # files installed from requirements.txt into the service zip
    cache_hit: bool | None = None  # None: no requirements to install
    checked: str = ""  # what check_service_zip found: fits <runtime> on <arch>, sizes against the limits

    def to_json(self) -> dict:
        return {
            "service": {
                "path": str(self.paths[0]),
                "digest": self.service.digest,
                "files": self.service.files,
            },
            "rollback": {
                "path": str(self.paths[1]),
                "digest": self.rollback.digest,
                "files": self.rollback.files,
            },
            "dependencies": self.dependencies,
            "cache_hit": self.cache_hit,
            "checked": self.checked,
        }


def rollback_package() -> LambdaZip:
    """The self-contained rollback function: stageflow's rollback core and its boto3-only helpers."""
    base = Path(__file__).resolve().parents[1]
    return zip_files({f"stageflow/{rel}": (base / rel).read_bytes() for rel in ROLLBACK_MODULES})


def pip_platforms(runtime: str, architecture: str) -> tuple[str, str, list[str]]:
    """(python version, wheel arch, --platform tags) for a Lambda runtime and architecture: manylinux
    wheels up to the runtime's glibc (2.26 on Amazon Linux 2 for python3.8–3.11, 2.34 on AL2023)."""
    m = re.fullmatch(r"python3\.(\d+)", runtime)
    if not m:
        raise UsageError(f"service.runtime {runtime!r} is not a Python Lambda runtime", "e.g. python3.11")
    if architecture not in ARCHITECTURES:
        raise UsageError(
            f"service.architecture {architecture!r} is not a Lambda architecture", "x86_64 or arm64"
        )
    minor = int(m.group(1))
    arch = ARCHITECTURES[architecture]
    glibc = 26 if minor <= 11 else 34
    tags = [f"manylinux_2_{g}_{arch}" for g in range(glibc, 16, -1)] + [f"manylinux2014_{arch}"]
    return f"3.{minor}", arch, tags


def install_requirements(
    requirements: Path,
    runtime: str,
    architecture: str,
    cache_dir: Path,
    *,
    runner: process.Runner = process.RUNNER,
    timeout: float = 600.0,
) -> tuple[dict[str, bytes], bool]:
    """``requirements`` installed for the function's platform (``pip install --target --platform ...
    --only-binary=:all:``), as archive name → bytes, cached by requirements content, runtime and
    architecture. Returns (files, cache hit). Pip failing or no wheel for the platform: exit 3."""
    pyver, arch, tags = pip_platforms(runtime, architecture)
    # markers evaluated for the function, not for the interpreter pip runs in (which would drop every
    # `; python_version >= "3.13"` line of an exported lock file for a python3.13 function, silently)
    text, applies = for_target(
        requirements.read_text(encoding="utf-8"), lambda_environment(pyver, arch), requirements.parent
    )
    key_of = "\n".join(["markers:function", text, runtime, arch, *tags])
    key = hashlib.sha256(key_of.encode()).hexdigest()[:24]
    target = cache_dir / f"{runtime}-{arch}-{key}"
    hit = target.is_dir()
    if not hit:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".deps-", dir=cache_dir))
        resolved = cache_dir / f"{tmp.name}.requirements.txt"  # beside the install, never inside it
        resolved.write_text(text, encoding="utf-8")
        platform = f"{runtime}/{architecture}"
        try:
            _pip_install(resolved, tmp, pyver, tags, runner, timeout, platform, shown=requirements)
            if applies and not any(tmp.iterdir()):
                raise EnvironmentFailure(
                    f"installing {requirements} for {platform} installed nothing, though {applies} "
                    "requirement(s) apply to it",
                    "run the same pip install by hand and read its 'Ignoring' lines",
                )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            resolved.unlink(missing_ok=True)
        try:
            tmp.rename(target)
        except OSError:  # another build put the same key in place first
            shutil.rmtree(tmp, ignore_errors=True)
    return _installed_files(target), hit


def pip_argv(requirements: Path, target: Path, pyver: str, tags: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    argv += ["--no-compile", "--target", str(target), "--implementation", "cp", "--python-version", pyver]
    for tag in tags:
        argv += ["--platform", tag]
    return [*argv, "--only-binary=:all:", "--requirement", str(requirements)]


def _pip_install(
    requirements: Path,
    target: Path,
    pyver: str,
    tags: list[str],
    runner: process.Runner,
    timeout: float,
    platform: str,
    *,
    shown: Path,
) -> None:
    argv = pip_argv(requirements, target, pyver, tags)
    try:
        res = runner(argv, timeout=timeout, ok_codes=None)
    except (process.CommandNotFound, process.CommandTimeout) as exc:
        raise EnvironmentFailure(f"pip for {shown.name} failed to run: {exc}") from None
    if res.returncode != 0:
        lines = [ln.strip() for ln in (res.stderr or res.stdout or "").splitlines() if ln.strip()]
        why = next((ln for ln in lines if ln.startswith("ERROR:")), lines[-1] if lines else "")
        raise EnvironmentFailure(
            f"installing {shown} for {platform} failed: {why[:300]}",
            "every requirement needs a wheel for the function's platform (or a pure-Python wheel)",
        )


def _installed_files(target: Path) -> dict[str, bytes]:
    """What pip put under ``target``, as archive name → bytes (no scripts, no bytecode)."""
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(target):
        rel_dir = Path(dirpath).relative_to(target)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in _DEPS_EXCLUDE_TOP]
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(EXCLUDE_SUFFIXES):
                continue
            path = Path(dirpath) / name
            files[path.relative_to(target).as_posix()] = path.read_bytes()
    return files


def build_packages(
    config,
    *,
    cache_dir: Path | None = None,
    runner: process.Runner = process.RUNNER,
    write: bool = True,
) -> Packages:
    """The packages the environment roots deploy, written where their tfvars look
    (``<root>/build/lambda/<service>.zip`` and ``stageflow-rollback.zip``): the service source with
    ``requirements.txt`` installed for the function's runtime and architecture, and the self-contained
    rollback function. The same inputs give the same bytes; a file is rewritten only when it changed.
    A service zip that does not fit the function (:func:`check_service_zip`) is a UsageError (exit 2)
    and nothing is written."""
    svc = config.service
    src = config.root / svc.source
    base = package(src, Selection(svc.include, svc.exclude))
    deps: dict[str, bytes] = {}
    hit: bool | None = None
    req = src / "requirements.txt"
    if read_requirement_lines(req):
        cache = cache_dir or (config.root / ".stageflow" / "cache" / "lambda-deps")
        deps, hit = install_requirements(req, svc.runtime, svc.architecture, cache, runner=runner)
    service = zip_files({**deps, **_zip_contents(base)}) if deps else base  # the source wins
    checked = check_service_zip(service, svc.runtime, svc.architecture, f"{svc.name}.zip")  # before writing
    rollback = rollback_package()
    out_dir = config.root / "build" / "lambda"
    paths = (out_dir / f"{svc.name}.zip", out_dir / ROLLBACK_ZIP)
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        for path, z in zip(paths, (service, rollback), strict=True):
            if not path.is_file() or path.read_bytes() != z.data:
                tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # builds may run at once
                tmp.write_bytes(z.data)
                tmp.replace(path)
    return Packages(service, rollback, paths, len(deps), hit, checked)


SHOW_PROBLEMS = 3  # wheels/files named in the error; the rest are counted


def check_service_zip(z: LambdaZip, runtime: str, architecture: str, name: str) -> str:
    """Before anything runs: every wheel tag and compiled extension in ``z`` fits the function's runtime
    (cpXY / abi3) and architecture, and ``z`` is within Lambda's size limits
    (:mod:`stageflow.zipcheck`); else a UsageError (exit 2) naming the first offenders and the count, or
    the largest packages. Returns what it checked, for the build stage's summary."""
    pyver, _, _ = pip_platforms(runtime, architecture)
    target = zipcheck.Target(int(pyver.split(".")[1]), architecture)
    problems = zipcheck.check_zip(z.data, target)
    if problems:
        shown = "; ".join(str(p) for p in problems[:SHOW_PROBLEMS])
        more = f"; and {len(problems) - SHOW_PROBLEMS} more" if len(problems) > SHOW_PROBLEMS else ""
        raise UsageError(
            f"{name} does not fit {target.describe()}: {len(problems)} wheel(s)/file(s) built for "
            f"another platform: {shown}{more}",
            "vendored packages in service.source must be built for the function's runtime and "
            "architecture: list them in requirements.txt (installed for it) or leave them out with "
            "[service] exclude",
        )
    report = zipcheck.sizes(z.data)
    over = report.over()
    if over:
        raise UsageError(
            f"{name} is over Lambda's limits: {'; '.join(over)}; largest: {report.largest_line()}",
            "leave out what the function does not need ([service] exclude) or move dependencies to a "
            "layer or a container image",
        )
    return (
        f"fits {target.describe()}, {report.zipped / 2**20:.1f}/{zipcheck.MAX_ZIPPED_BYTES // 2**20} MB "
        f"zipped, {report.unzipped / 2**20:.1f}/{zipcheck.MAX_UNZIPPED_BYTES // 2**20} MB unzipped"
    )


def _zip_contents(z: LambdaZip) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(z.data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}

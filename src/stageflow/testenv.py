"""The service's own test environment: a virtualenv of the function's runtime Python with the service's
own requirement files, built once per content and reused.

- **Interpreter**: the runtime's (``python3.12`` → CPython 3.12, :mod:`stageflow.pythons`), never
  stageflow's: a hash-locked file made for the service's Python installs only there.
- **Requirements**: the files the service names (``[tests] requirements``), else ``requirements.txt``
  plus ``requirements-dev.txt`` when present; each installed by its own ``pip install -r`` so a
  hash-locked file (``--hash=sha256:``) runs in pip's ``--require-hashes`` mode and an unhashed dev
  file beside it still installs. Then the tools stageflow drives the suites with (pytest, pytest-cov)
  when the service's files did not bring them.
- **Cache**: ``<cache>/<key>`` where the key is the interpreter's version and every file's bytes;
  one builder per key (a file lock), marked complete only at the end, so a killed build leaves
  nothing half-made that looks finished.
- **Environment of the tests**: the service's region as ``AWS_DEFAULT_REGION``/``AWS_REGION``, dummy
  credentials, no instance metadata, no profile: a unit test can create clients, never reach AWS.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stageflow import process, pythons
from stageflow.errors import EnvironmentFailure, UsageError

DEFAULT_FILES = ("requirements.txt", "requirements-dev.txt")
TOOLS = ("pytest>=7.0", "pytest-cov>=4.0")
PIP_TIMEOUT_S = 900.0
# what the service's tests must never inherit from the shell that runs them
_DROPPED = (
    *("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"),
    *("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"),
    *("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "COV_CORE_SOURCE", "COV_CORE_CONFIG", "COV_CORE_DATAFILE"),
)


@dataclass(frozen=True)
class TestEnv:
    python: Path  # the venv's interpreter
    key: str
    reused: bool
    files: tuple[Path, ...]


def requirement_files(source: Path, configured: Sequence[str] | None = None) -> tuple[Path, ...]:
    """The files the test environment installs, relative to ``source`` (the service's folder)."""
    if configured is not None:
        files = tuple(source / name for name in configured)
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise UsageError(f"tests.requirements: no such file: {', '.join(missing)}")
        return files
    return tuple(source / name for name in DEFAULT_FILES if (source / name).is_file())


def is_hash_locked(text: str) -> bool:
    return "--hash=" in text


def cache_key(interpreter_version: str, files: Sequence[Path]) -> str:
    h = hashlib.sha256(f"testenv-1\0{interpreter_version}\0{'|'.join(TOOLS)}\0".encode())
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def _interpreter_version(python: Path, runner: process.Runner) -> str:
    res = runner([str(python), "-c", "import sys; print(sys.version.split()[0])"], timeout=60)
    return res.stdout.strip()


def ensure(
    runtime: str,
    files: Sequence[Path],
    cache_dir: Path,
    *,
    runner: process.Runner = process.RUNNER,
    environ: Mapping[str, str] | None = None,
    on_line=None,
) -> TestEnv:
    """The test environment for ``runtime`` and ``files``: reused when built before, else built."""
    python = pythons.find(runtime, environ)
    key = cache_key(_interpreter_version(python, runner), files)
    final = cache_dir / key
    venv_python = final / "bin" / "python"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"{key}.lock", "w") as lock:  # one builder per key; others wait, then reuse
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ".complete").is_file() and venv_python.exists():
            return TestEnv(venv_python, key, True, tuple(files))
        shutil.rmtree(final, ignore_errors=True)  # a build that was killed: never looks finished
        try:
            _build(python, final, files, runner, on_line)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        (final / ".complete").write_text(runtime + "\n")
    return TestEnv(venv_python, key, False, tuple(files))


def _build(python: Path, where: Path, files: Sequence[Path], runner: process.Runner, on_line) -> None:
    runner([str(python), "-m", "venv", str(where)], timeout=300)
    pip = [str(where / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    for f in files:
        try:
            runner([*pip, "-r", str(f)], timeout=PIP_TIMEOUT_S, on_line=on_line)
        except process.CommandFailed as exc:
            raise EnvironmentFailure(
                f"the service's test environment: pip could not install {f.name}: {_pip_error(exc)}",
                "check the file installs with the function's runtime Python",
            ) from None
    probe = runner(
        [str(where / "bin" / "python"), "-c", "import pytest, pytest_cov"], ok_codes=None, timeout=60
    )
    if probe.returncode != 0:
        try:
            runner([*pip, *TOOLS], timeout=PIP_TIMEOUT_S, on_line=on_line)
        except process.CommandFailed as exc:
            raise EnvironmentFailure(
                f"the service's test environment: pip could not install pytest: {_pip_error(exc)}"
            ) from None


def _pip_error(exc: process.CommandFailed) -> str:
    lines = [ln.strip() for ln in (exc.result.stderr or exc.result.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1][:300]


def test_environ(region: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the service's tests run with: the shell's environment less credentials and endpoints, plus
    the service's region and dummy credentials."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _DROPPED}
    env.update(
        {
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - dummy credentials for unit tests
            "AWS_SESSION_TOKEN": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/stageflow-service-tests/credentials",
            "AWS_CONFIG_FILE": "/nonexistent/stageflow-service-tests/config",
        }
    )
    return env


def collection_errors(output: str, limit: int = 6) -> list[str]:
    """The first lines that say why pytest could not collect: ``ERROR collecting …`` or ``ImportError while
    loading conftest …`` (pytest's exit 4, on stderr), each with its last ``E`` lines."""
    out: list[str] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "ERROR collecting" in line or line.startswith("ImportError while loading conftest"):
            out.append(line.strip(" _"))
            out += [ln.strip() for ln in lines[i + 1 : i + 40] if ln.startswith("E ")][-2:]
        if len(out) >= limit:
            break
    return out[:limit]

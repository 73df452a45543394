"""Find the Python interpreter of a Lambda runtime (``python3.12`` → an executable CPython 3.12).

Looked for on PATH first (``python3.12``), then under pyenv (``$PYENV_ROOT/versions/3.12.*/bin``,
newest patch first). What is found is checked to be that version. Nothing found is
:class:`RuntimeMissing` (exit 3): one line naming the interpreter and how to get one.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from stageflow.errors import MissingBinaryError

_RUNTIME = re.compile(r"^python(3)\.(\d+)$")

# Python runtimes a function may name: what Lambda still creates and updates (python3.9 was blocked in
# 2026) and what the pinned AWS provider accepts (hashicorp/aws 5.100.0 stops at python3.13; Lambda's
# python3.14 needs a newer provider pin in infrastructure/*/versions.tf).
PROVIDER_PIN = "hashicorp/aws 5.100.0"
LAMBDA_PYTHON_RUNTIMES = ("python3.10", "python3.11", "python3.12", "python3.13")


def runtime_problem(runtime: str) -> str | None:
    """Why ``runtime`` cannot be deployed with this project's pins (None when it can)."""
    if runtime in LAMBDA_PYTHON_RUNTIMES:
        return None
    accepted = f"{LAMBDA_PYTHON_RUNTIMES[0]}–{LAMBDA_PYTHON_RUNTIMES[-1]}"
    m = _RUNTIME.match(runtime)
    if m and int(m.group(2)) > int(LAMBDA_PYTHON_RUNTIMES[-1].rsplit(".", 1)[1]):
        return f"{runtime} is newer than the pinned AWS provider ({PROVIDER_PIN}) accepts ({accepted})"
    if m:
        return f"{runtime} is no longer accepted by AWS Lambda for new or updated functions ({accepted})"
    return f"{runtime!r} is not a Python Lambda runtime ({accepted})"


class RuntimeMissing(MissingBinaryError):
    def __init__(self, runtime: str, looked: list[str]):
        super().__init__(
            f"no {runtime} interpreter on this machine (looked on PATH and in {', '.join(looked)})",
            f"install CPython {runtime.removeprefix('python')} (e.g. `pyenv install "
            f"{runtime.removeprefix('python')}` or your package manager's {runtime})",
        )
        self.runtime = runtime


def version_of(runtime: str) -> tuple[int, int]:
    """``python3.12`` → (3, 12); anything else is a ValueError."""
    m = _RUNTIME.match(runtime)
    if not m:
        raise ValueError(f"not a Python Lambda runtime: {runtime!r}")
    return int(m.group(1)), int(m.group(2))


def _pyenv_root(environ: dict[str, str] | os._Environ) -> Path:
    return Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def _patch(path: Path) -> tuple[int, ...]:
    nums = re.findall(r"\d+", path.name)
    return tuple(int(n) for n in nums)


def candidates(runtime: str, environ: dict[str, str] | os._Environ | None = None) -> list[Path]:
    """Where ``runtime``'s interpreter may be, in order of preference (existing files only)."""
    env = os.environ if environ is None else environ
    major, minor = version_of(runtime)
    found: list[Path] = []
    for folder in (env.get("PATH") or "").split(os.pathsep):
        if not folder or Path(folder).name == "shims":  # a pyenv shim is no interpreter of its own
            continue
        on_path = shutil.which(f"python{major}.{minor}", path=folder)
        if on_path:
            found.append(Path(on_path))
    versions = _pyenv_root(env) / "versions"
    if versions.is_dir():
        pattern = re.compile(rf"^{major}\.{minor}(\.\d+)?$")
        dirs = sorted((d for d in versions.iterdir() if pattern.match(d.name)), key=_patch, reverse=True)
        for d in dirs:
            exe = d / "bin" / f"python{major}.{minor}"
            if exe.is_file() and os.access(exe, os.X_OK):
                found.append(exe)
    return list(dict.fromkeys(found))


def find(runtime: str, environ: dict[str, str] | os._Environ | None = None) -> Path:
    """The interpreter for ``runtime``; :class:`RuntimeMissing` when there is none."""
    env = os.environ if environ is None else environ
    found = candidates(runtime, env)
    if not found:
        raise RuntimeMissing(runtime, [str(_pyenv_root(env) / "versions")])
    return found[0]

"""What Lambda's Python runtime provides besides the function's zip (its ``/var/runtime``): boto3 and
its dependencies, already compiled to bytecode for that runtime's Python.

The local runtime (:mod:`stageflow.local.runtime`) runs a function with the runtime's own interpreter
(``python3.12``), ``-S -s`` and ``PYTHONDONTWRITEBYTECODE`` (the task directory stays as the zip made
it, like Lambda's read-only ``/var/task``). boto3 comes from the emulator's own environment, whose
bytecode is the emulator's Python's (``cpython-311``): before this module every cold start of a
``python3.12`` function that imported boto3 compiled boto3 and botocore from source (about 0.45 s of
its 1.25 s, measured with the orders fixture's worker), which Lambda's runtime never does — its boto3
ships compiled. So the library is laid out once per runtime (per emulator process): a tree of
directories whose files are symbolic links to the installed packages' files (directories without a
Python module, such as botocore's service data, are one link), compiled with the runtime's
interpreter into the tree's own ``__pycache__`` folders (the installed packages are never written).
A compile that fails leaves the sources, which still import (only slower).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from stageflow import process

RUNTIME_LIB_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
COMPILE_TIMEOUT_S = 300.0

_locks: dict[Path, threading.Lock] = {}
_locks_lock = threading.Lock()


def _sources() -> list[Path]:
    """The installed packages (or single modules) Lambda's runtime provides, as this process finds them."""
    out = []
    for name in RUNTIME_LIB_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        src = Path(spec.origin)
        out.append(src.parent if src.name == "__init__.py" else src)
    return out


def _mirror(src: Path, dst: Path) -> None:
    """``dst``: ``src``'s tree as real directories wherever a Python module lies below, links elsewhere."""
    with_modules = {src}
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        if any(f.endswith(".py") for f in filenames):
            here = Path(dirpath)
            with_modules.update(p for p in (here, *here.parents) if p.is_relative_to(src))
    for dirpath, dirnames, filenames in os.walk(src):
        here = Path(dirpath)
        target = dst / here.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        keep = []
        for d in dirnames:
            if d == "__pycache__":
                continue
            if here / d in with_modules:
                keep.append(d)
            else:
                (target / d).symlink_to(here / d)
        dirnames[:] = keep
        for f in filenames:
            if not f.endswith((".pyc", ".pyo")):
                (target / f).symlink_to(here / f)


def _lock_for(path: Path) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(path, threading.Lock())


def library(workdir: Path, runtime: str, python: Path, *, runner: process.Runner = process.RUNNER) -> Path:
    """The runtime library for ``runtime`` (interpreter ``python``), laid out and compiled on first use."""
    key = re.sub(r"[^A-Za-z0-9._-]", "_", runtime) or "python"
    lib = Path(workdir) / "runtime-lib" / key
    with _lock_for(lib):
        if lib.is_dir():
            return lib
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=lib.parent, prefix=f".{key}-"))
        try:
            for src in _sources():
                if src.is_dir():
                    _mirror(src, tmp / src.name)
                else:
                    (tmp / src.name).symlink_to(src)
            _compile(tmp, lib, python, runner)
            tmp.rename(lib)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return lib


def _compile(tree: Path, final: Path, python: Path, runner: process.Runner) -> None:
    """Bytecode for ``python`` next to every module of ``tree`` (named as under ``final``, where it
    moves). A module this interpreter cannot compile, or no compile at all, leaves sources."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    argv = [str(python), "-S", "-s", "-m", "compileall", "-q", "-d", str(final), str(tree)]
    with contextlib.suppress(process.CommandNotFound, process.CommandTimeout):
        runner(argv, env=env, timeout=COMPILE_TIMEOUT_S, ok_codes=None)

"""The runtime library (Lambda's /var/runtime boto3): laid out once per runtime, compiled for that
runtime's interpreter in its own tree, the installed packages never written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stageflow import process
from stageflow.local import runtime_lib


def _files(root: Path) -> set[str]:
    return {str(Path(d, f).relative_to(root)) for d, _dirs, fs in os.walk(root) for f in fs}


def test_the_library_is_compiled_for_the_runtime_and_its_modules_load_from_that_bytecode(
    tmp_path: Path, monkeypatch
):
    import jmespath

    installed = Path(jmespath.__file__).parent
    before = _files(installed)
    monkeypatch.setattr(runtime_lib, "RUNTIME_LIB_PACKAGES", ("jmespath", "no_such_package_here"))
    lib = runtime_lib.library(tmp_path, "python3.x", Path(sys.executable))
    assert lib == tmp_path / "runtime-lib" / "python3.x"
    tag = sys.implementation.cache_tag
    assert (lib / "jmespath" / "__init__.py").is_symlink()
    assert (lib / "jmespath" / "__pycache__" / f"__init__.{tag}.pyc").is_file()
    assert _files(installed) == before  # nothing written next to the installed package
    # the function's interpreter, as the local runtime starts it: -S -s, never writing bytecode
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    code = f"import sys; sys.path.append({str(lib)!r}); import jmespath; print(jmespath.__cached__)"
    out = subprocess.run(
        [sys.executable, "-S", "-s", "-v", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    cached = str(lib / "jmespath" / "__pycache__" / f"__init__.{tag}.pyc")
    assert out.stdout.strip() == cached
    assert f"code object from '{cached}'" in out.stderr  # read from the bytecode, not compiled again


def test_it_is_laid_out_once_and_a_failed_compile_leaves_importable_sources(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(runtime_lib, "RUNTIME_LIB_PACKAGES", ("jmespath",))
    calls = []

    def runner(argv, **kw):
        calls.append(argv)
        raise process.CommandTimeout(argv, kw["timeout"], "", "", True)

    lib = runtime_lib.library(tmp_path, "python3.12", Path("/nowhere/python3.12"), runner=runner)
    assert runtime_lib.library(tmp_path, "python3.12", Path("/nowhere/python3.12"), runner=runner) == lib
    assert len(calls) == 1 and calls[0][:6] == ["/nowhere/python3.12", "-S", "-s", "-m", "compileall", "-q"]
    assert (lib / "jmespath" / "__init__.py").is_file() and not (lib / "jmespath" / "__pycache__").exists()
    assert [p.name for p in lib.parent.iterdir()] == ["python3.12"]  # no half-made tree left


def test_directories_without_a_module_are_one_link(tmp_path: Path):
    src = tmp_path / "pkg"
    (src / "data" / "svc" / "2020").mkdir(parents=True)
    (src / "data" / "svc" / "2020" / "model.json").write_text("{}")
    (src / "sub").mkdir()
    (src / "__init__.py").write_text("")
    (src / "sub" / "mod.py").write_text("X = 1\n")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"")
    runtime_lib._mirror(src, tmp_path / "out")
    out = tmp_path / "out"
    assert (out / "data").is_symlink() and (out / "data").resolve() == (src / "data").resolve()
    assert not (out / "sub").is_symlink() and (out / "sub" / "mod.py").is_symlink()
    assert not (out / "__pycache__").exists()

"""Finding a Lambda runtime's interpreter: PATH first, then pyenv's newest patch; a clear miss."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stageflow import pythons
from stageflow.errors import ExitCode


def fake_python(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_pyenv_newest_patch_wins(tmp_path: Path):
    old = fake_python(tmp_path / "pyenv/versions/3.12.1/bin/python3.12")
    new = fake_python(tmp_path / "pyenv/versions/3.12.10/bin/python3.12")
    fake_python(tmp_path / "pyenv/versions/3.13.0/bin/python3.13")
    env = {"PATH": str(tmp_path / "empty"), "PYENV_ROOT": str(tmp_path / "pyenv")}
    assert pythons.candidates("python3.12", env) == [new, old]
    assert pythons.find("python3.12", env) == new


def test_path_comes_first_and_shims_are_no_interpreter(tmp_path: Path):
    on_path = fake_python(tmp_path / "bin/python3.12")
    fake_python(tmp_path / "pyenv/shims/python3.12")
    pyenv = fake_python(tmp_path / "pyenv/versions/3.12.1/bin/python3.12")
    env = {"PATH": os.pathsep.join([str(tmp_path / "pyenv/shims"), str(tmp_path / "bin")]),
           "PYENV_ROOT": str(tmp_path / "pyenv")}  # fmt: skip
    assert pythons.candidates("python3.12", env) == [on_path, pyenv]


def test_missing_interpreter_is_one_line_exit_3(tmp_path: Path):
    env = {"PATH": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pyenv")}
    with pytest.raises(pythons.RuntimeMissing) as info:
        pythons.find("python3.14", env)
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    line = info.value.one_line()
    assert "python3.14" in line and "pyenv install 3.14" in line and "\n" not in line


def test_not_a_python_runtime():
    with pytest.raises(ValueError):
        pythons.version_of("nodejs20.x")


def test_runtime_problem_names_the_pin():
    assert pythons.runtime_problem("python3.12") is None
    assert "hashicorp/aws 5.100.0" in pythons.runtime_problem("python3.14")
    assert "no longer accepted" in pythons.runtime_problem("python3.8")
    assert "not a Python Lambda runtime" in pythons.runtime_problem("nodejs20.x")

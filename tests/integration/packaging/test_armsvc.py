"""The arm64 fixture service (tests/fixtures/services/armsvc: python3.12, hash-locked pydantic-core) built
by the real pip for the function's platform: the zip holds the aarch64 extension, the static check passes
for arm64, and the same zip checked for x86_64 fails naming pydantic_core. pip runs once per session."""

from __future__ import annotations

import shutil
import zipfile

import pytest

from stageflow.config import load
from stageflow.errors import ExitCode, UsageError
from stageflow.packaging.lambda_zip import build_packages, check_service_zip
from stageflow.zipcheck import Target, check_zip, elf_machine
from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "services" / "armsvc"


@pytest.fixture(scope="session")
def armsvc(tmp_path_factory):
    project = tmp_path_factory.mktemp("armsvc")
    shutil.copytree(FIXTURE, project, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = load(project / "stageflow.toml")
    return build_packages(cfg, cache_dir=tmp_path_factory.mktemp("lambda-deps"))


def test_the_arm64_zip_holds_the_aarch64_extension_and_passes_the_static_check(armsvc):
    path = armsvc.paths[0]
    assert path.name == "armsvc.zip" and armsvc.dependencies > 0
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        ext = [n for n in names if n.startswith("pydantic_core/_pydantic_core.") and n.endswith(".so")]
        assert ext == ["pydantic_core/_pydantic_core.cpython-312-aarch64-linux-gnu.so"]
        assert elf_machine(zf.read(ext[0])[:20]) == "aarch64"
        wheel = zf.read("pydantic_core-2.27.2.dist-info/WHEEL").decode()
    assert "Tag: cp312-cp312-manylinux_2_17_aarch64" in wheel
    assert "arm_app/handler.py" in names and not any(n.startswith("tests/") for n in names)
    assert check_zip(path, Target(12, "arm64")) == []


def test_the_same_zip_checked_for_x86_64_fails_naming_pydantic_core(armsvc):
    problems = check_zip(armsvc.paths[0], Target(12, "x86_64"))
    assert {p.path.split("/", 1)[0] for p in problems} == {"pydantic_core-2.27.2.dist-info", "pydantic_core"}
    with pytest.raises(UsageError) as err:
        check_service_zip(armsvc.service, "python3.12", "x86_64", "armsvc.zip")
    line = err.value.one_line()
    assert err.value.exit_code == ExitCode.USAGE
    assert line.startswith("armsvc.zip does not fit python3.12 on x86_64: 2 wheel(s)/file(s)")
    assert "pydantic_core/_pydantic_core.cpython-312-aarch64-linux-gnu.so: compiled for aarch64" in line

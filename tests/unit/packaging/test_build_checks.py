"""Checked at build, before anything runs: a service zip with wheels or extensions for another platform,
or over Lambda's size limits, is exit 2 from the build stage (and from `stageflow plan`), naming the
offenders, with nothing written. Synthetic services here; tests/integration/packaging/test_armsvc.py
builds the arm64 fixture with the real pip."""

from __future__ import annotations

import random
import struct
import zipfile
from pathlib import Path

import pytest

from stageflow import pipeline, zipcheck
from stageflow.cli import main
from stageflow.config import load
from stageflow.errors import ExitCode, UsageError
from stageflow.packaging.lambda_zip import build_packages

AARCH64, X86_64 = 183, 62


def elf(machine: int) -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 11 + struct.pack("<H", machine) + b"\x00" * 40


def wheel(tag: str) -> str:
    return f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n"


def project(tmp_path: Path, *, architecture: str = "x86_64", extra: str = "") -> Path:
    """A service (runtime python3.12) with its handler; ``extra`` goes into [service]."""
    (tmp_path / "src" / "svc").mkdir(parents=True)
    (tmp_path / "src" / "svc" / "__init__.py").write_text("")
    (tmp_path / "src" / "svc" / "handler.py").write_text("def handler(e, c=None):\n    return 1\n")
    (tmp_path / "stageflow.toml").write_text(
        '[service]\nname = "svc"\nsource = "src"\nhandler = "svc.handler.handler"\n'
        f'runtime = "python3.12"\narchitecture = "{architecture}"\n{extra}'
    )
    return tmp_path / "stageflow.toml"


def vendor(root: Path, name: str, tag: str, machine: int | None = None) -> None:
    """A wheel installed by hand into the source (as `pip install -t src` on a laptop leaves it)."""
    (root / "src" / name).mkdir()
    (root / "src" / name / "__init__.py").write_text("")
    (root / "src" / f"{name}-1.0.dist-info").mkdir()
    (root / "src" / f"{name}-1.0.dist-info" / "WHEEL").write_text(wheel(tag))
    if machine is not None:
        arch = {AARCH64: "aarch64", X86_64: "x86_64"}[machine]
        (root / "src" / name / f"_ext.cpython-312-{arch}-linux-gnu.so").write_bytes(elf(machine))


def build_stage(config_path: Path):
    cfg = load(config_path)
    return pipeline.stage_build(lambda: build_packages(cfg))


def test_fitting_wheels_build(tmp_path):
    path = project(tmp_path, architecture="arm64")
    vendor(tmp_path, "fast", "cp312-cp312-manylinux_2_17_aarch64", AARCH64)
    vendor(tmp_path, "stable", "cp38-abi3-manylinux2014_aarch64")
    vendor(tmp_path, "pure", "py3-none-any")
    result = build_stage(path)
    with zipfile.ZipFile(result.packages.paths[0]) as zf:
        assert "fast/_ext.cpython-312-aarch64-linux-gnu.so" in zf.namelist()
    assert "(fits python3.12 on arm64, 0.0/50 MB zipped, 0.0/250 MB unzipped)" in result.summary


def test_wrong_platform_wheels_are_exit_2_from_the_build_stage_naming_the_first_and_the_count(tmp_path):
    path = project(tmp_path, architecture="x86_64")
    for name in ("alpha", "bravo", "charlie"):
        vendor(tmp_path, name, "cp312-cp312-manylinux_2_17_aarch64", AARCH64)  # 2 problems each
    vendor(tmp_path, "oldpy", "cp311-cp311-manylinux_2_17_x86_64")
    vendor(tmp_path, "fine", "py3-none-any")
    with pytest.raises(UsageError) as err:
        build_stage(path)
    line = err.value.one_line()
    assert err.value.exit_code == ExitCode.USAGE and "\n" not in line
    assert "svc.zip does not fit python3.12 on x86_64: 7 wheel(s)/file(s)" in line
    assert "alpha-1.0.dist-info: wheel for cp312-cp312-manylinux_2_17_aarch64" in line
    assert "alpha/_ext.cpython-312-aarch64-linux-gnu.so: compiled for aarch64" in line
    assert "and 4 more" in line and "oldpy" not in line and "fine" not in line
    assert not (tmp_path / "build").exists()  # nothing written, nothing to deploy


def test_an_x86_extension_in_an_arm64_function_is_named(tmp_path):
    path = project(tmp_path, architecture="arm64")
    vendor(tmp_path, "native", "cp312-cp312-manylinux_2_17_x86_64", X86_64)
    with pytest.raises(UsageError) as err:
        build_stage(path)
    assert "native/_ext.cpython-312-x86_64-linux-gnu.so: compiled for x86_64" in err.value.one_line()


@pytest.mark.parametrize("limit", ["MAX_UNZIPPED_BYTES", "MAX_ZIPPED_BYTES"])
def test_over_the_size_limit_is_exit_2_naming_the_largest_packages(tmp_path, monkeypatch, limit):
    path = project(tmp_path)
    (tmp_path / "src" / "bulky").mkdir()
    (tmp_path / "src" / "bulky" / "__init__.py").write_bytes(b"#" * 40_000 + b"\n")
    (tmp_path / "src" / "bulky" / "data.bin").write_bytes(random.Random(1).randbytes(60_000))
    monkeypatch.setattr(zipcheck, limit, 20_000)
    with pytest.raises(UsageError) as err:
        build_stage(path)
    line = err.value.one_line()
    kind = "unzipped" if limit == "MAX_UNZIPPED_BYTES" else "zipped"
    assert err.value.exit_code == ExitCode.USAGE and f"{kind} > 0 MB" in line
    assert "svc.zip is over Lambda's limits" in line and "largest: bulky 0.1 MB, svc 0.0 MB" in line
    assert not (tmp_path / "build").exists()


def test_plan_stops_at_the_build_with_exit_2_before_terraform(tmp_path, capsys):
    path = project(tmp_path, architecture="arm64")
    vendor(tmp_path, "native", "cp312-cp312-manylinux_2_17_x86_64", X86_64)
    assert main(["--config", str(path), "plan", "dev"]) == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("stageflow: error: svc.zip does not fit python3.12 on arm64")
    assert "native-1.0.dist-info" in err
    assert not (tmp_path / "build").exists() and not (tmp_path / ".terraform").exists()


def test_excluded_vendored_wheels_are_not_checked_because_they_do_not_ship(tmp_path):
    path = project(tmp_path, extra='exclude = ["native*"]\n')
    vendor(tmp_path, "native", "cp312-cp312-manylinux_2_17_aarch64", AARCH64)
    result = build_stage(path)
    with zipfile.ZipFile(result.packages.paths[0]) as zf:
        assert sorted(zf.namelist()) == ["svc/__init__.py", "svc/handler.py"]

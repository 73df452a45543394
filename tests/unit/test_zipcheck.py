"""Static checks of a Lambda zip: wheel tags, compiled extensions (names and ELF headers), sizes."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest

from stageflow.zipcheck import (
    MAX_UNZIPPED_BYTES,
    Target,
    check_zip,
    elf_machine,
    sizes,
    tag_fits,
)

X86_312 = Target(12, "x86_64")
ARM_312 = Target(12, "arm64")
X86_311 = Target(11, "x86_64")


def elf(machine: int) -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 11 + struct.pack("<H", machine) + b"\x00" * 40


def make_zip(path: Path, files: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def wheel(tag: str) -> str:
    return f"Wheel-Version: 1.0\nGenerator: bdist_wheel\nRoot-Is-Purelib: false\nTag: {tag}\n"


@pytest.mark.parametrize(
    ("tag", "target", "fits"),
    [
        ("py3-none-any", X86_312, True),
        ("cp312-cp312-manylinux_2_17_x86_64", X86_312, True),
        ("cp312-cp312-manylinux2014_x86_64", X86_312, True),
        ("cp312-cp312-manylinux_2_17_aarch64", X86_312, False),
        ("cp312-cp312-manylinux_2_17_aarch64", ARM_312, True),
        ("cp311-cp311-manylinux_2_17_x86_64", X86_312, False),
        ("cp38-abi3-manylinux_2_17_x86_64", X86_312, True),
        ("cp313-abi3-manylinux_2_17_x86_64", X86_312, False),
        ("cp312-cp312-musllinux_1_1_x86_64", X86_312, False),
        ("cp312-cp312-macosx_11_0_arm64", ARM_312, False),
        ("cp311-cp311-manylinux_2_28_x86_64", X86_311, False),  # python3.11 runs on glibc 2.26
        ("cp312-cp312-manylinux_2_28_x86_64", X86_312, True),  # python3.12 on AL2023, glibc 2.34
        ("nonsense", X86_312, False),
    ],
)
def test_tag_fits(tag, target, fits):
    assert tag_fits(tag, target) is fits


def test_elf_machine():
    assert elf_machine(elf(62)) == "x86_64" and elf_machine(elf(183)) == "aarch64"
    assert elf_machine(b"not an elf file at all") is None


def test_clean_zip_has_no_problems(tmp_path: Path):
    z = make_zip(
        tmp_path / "ok.zip",
        {
            "pydantic_core-2.27.2.dist-info/WHEEL": wheel(
                "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"
            ),
            "pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so": elf(62),
            "six-1.0.dist-info/WHEEL": wheel("py2.py3-none-any"),
            "app/handler.py": "def handler(e, c): return 1\n",
        },
    )
    assert check_zip(z, X86_312) == []


def test_x86_wheels_in_an_arm64_zip_are_named(tmp_path: Path):
    z = make_zip(
        tmp_path / "arm.zip",
        {
            "pydantic_core-2.27.2.dist-info/WHEEL": wheel("cp312-cp312-manylinux_2_17_x86_64"),
            "pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so": elf(62),
        },
    )
    problems = [str(p) for p in check_zip(z, ARM_312)]
    assert problems == [
        "pydantic_core-2.27.2.dist-info: wheel for cp312-cp312-manylinux_2_17_x86_64",
        "pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so: compiled for x86_64",
    ]


def test_extension_for_another_python_is_named(tmp_path: Path):
    z = make_zip(tmp_path / "py.zip", {"m/_x.cpython-311-x86_64-linux-gnu.so": elf(62)})
    assert [p.reason for p in check_zip(z, X86_312)] == ["compiled for CPython 3.11"]


def test_sizes_name_the_largest_packages(tmp_path: Path):
    z = make_zip(tmp_path / "s.zip", {"big/a.bin": b"\0" * 3000, "small/b.py": "x", "top.py": "y" * 10})
    report = sizes(z)
    assert report.unzipped == 3011 and report.largest[0] == ("big", 3000)
    assert report.over() == []
    assert report.largest_line(2).startswith("big 0.0 MB, top.py")


def test_over_the_unzipped_limit_is_reported(tmp_path: Path):
    z = make_zip(tmp_path / "s.zip", {"a.txt": "x"})
    report = sizes(z)
    big = type(report)(report.zipped, MAX_UNZIPPED_BYTES + 1, (("numpy", MAX_UNZIPPED_BYTES + 1),))
    assert big.over() == ["250.0 MB unzipped > 250 MB"]

"""Static checks of a Lambda zip against the function it is for: does every wheel and compiled extension
fit the runtime (CPython version, glibc) and architecture, and is the zip within Lambda's size limits.

Nothing runs: wheel ``Tag:`` lines (``*.dist-info/WHEEL``), extension file names
(``.cpython-312-x86_64-linux-gnu.so``) and every shared object's ELF header (``e_machine``) are read
from the zip. This is what catches an ``arm64`` function built with x86_64 wheels, which the local
runtime cannot execute on this machine, and a ``cp311`` wheel shipped to ``python3.12``.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

MAX_ZIPPED_BYTES = 50 * 1024 * 1024  # Lambda's limit for a zip uploaded directly
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024  # Lambda's limit for the unzipped function (with layers)

# The glibc of each runtime's Amazon Linux (python3.9-3.11: AL2, 2.26; python3.12+: AL2023, 2.34)
RUNTIME_GLIBC = {9: (2, 26), 10: (2, 26), 11: (2, 26), 12: (2, 34), 13: (2, 34)}
ARCH_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
ELF_MACHINE = {62: "x86_64", 183: "aarch64", 3: "i386", 40: "arm"}
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_EXT = re.compile(r"\.cpython-3(\d+)(?:[a-z]*)-([a-z0-9_]+)-linux-gnu\.so$")


@dataclass(frozen=True)
class Problem:
    path: str  # the wheel's dist-info folder or the file inside the zip
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Target:
    minor: int  # python3.<minor>
    architecture: str  # "x86_64" | "arm64"

    @property
    def machine(self) -> str:
        return ARCH_MACHINE[self.architecture]

    @property
    def glibc(self) -> tuple[int, int]:
        return RUNTIME_GLIBC.get(self.minor, (2, 34))

    def describe(self) -> str:
        return f"python3.{self.minor} on {self.architecture}"


def platform_fits(tag: str, target: Target) -> bool:
    if tag == "any":
        return True
    for legacy, glibc in _LEGACY_MANYLINUX.items():
        if tag == f"{legacy}_{target.machine}":
            return glibc <= target.glibc
    m = re.match(r"^manylinux_(\d+)_(\d+)_(\w+)$", tag)
    if m:
        return m.group(3) == target.machine and (int(m.group(1)), int(m.group(2))) <= target.glibc
    return tag == f"linux_{target.machine}"  # a local build; musllinux, macOS, Windows never fit


def tag_fits(tag: str, target: Target) -> bool:
    """One wheel tag ``interpreter-abi-platform`` against the function's runtime and architecture."""
    try:
        interp, abi, plat = tag.split("-")
    except ValueError:
        return False
    if not platform_fits(plat, target):
        return False
    if re.fullmatch(r"py3\d*", interp):
        return abi == "none"
    m = re.fullmatch(r"cp3(\d+)", interp)
    if not m:
        return False
    minor = int(m.group(1))
    if abi == "abi3":
        return minor <= target.minor
    return minor == target.minor and abi in (f"cp3{target.minor}", "none")


def _wheel_tags(text: str) -> list[str]:
    """The tags of a WHEEL file, compressed tag sets expanded (``py2.py3-none-any`` → two tags)."""
    tags: list[str] = []
    for line in text.splitlines():
        if not line.startswith("Tag:"):
            continue
        parts = line.split(":", 1)[1].strip().split("-")
        if len(parts) != 3:
            continue
        tags += [
            f"{i}-{a}-{p}"
            for i in parts[0].split(".")
            for a in parts[1].split(".")
            for p in parts[2].split(".")
        ]
    return tags


def elf_machine(head: bytes) -> str | None:
    """The architecture an ELF file is for (None: not ELF)."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    endian = "<" if head[5] == 1 else ">"
    (machine,) = struct.unpack(endian + "H", head[18:20])
    return ELF_MACHINE.get(machine, f"machine {machine}")


def _open(zip_: Path | bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(zip_) if isinstance(zip_, bytes) else zip_)


def check_zip(path: Path | bytes, target: Target) -> list[Problem]:
    """Every wheel and compiled extension in the zip (a file, or its bytes) that does not fit ``target``."""
    problems: list[Problem] = []
    with _open(path) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.endswith(".dist-info/WHEEL"):
                tags = _wheel_tags(zf.read(info).decode("utf-8", "replace"))
                if tags and not any(tag_fits(t, target) for t in tags):
                    problems.append(Problem(name.rsplit("/", 1)[0], f"wheel for {', '.join(tags)}"))
            elif name.endswith(".so") or ".so." in name.rsplit("/", 1)[-1]:
                problems += _check_extension(zf, info, target)
    return problems


def _check_extension(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Target) -> list[Problem]:
    name = info.filename
    out: list[Problem] = []
    m = _EXT.search(name)
    if m and int(m.group(1)) != target.minor:
        out.append(Problem(name, f"compiled for CPython 3.{m.group(1)}"))
    with zf.open(info) as fh:
        machine = elf_machine(fh.read(20))
    if machine is not None and machine != target.machine:
        out.append(Problem(name, f"compiled for {machine}"))
    return out


@dataclass(frozen=True)
class SizeReport:
    zipped: int
    unzipped: int
    largest: tuple[tuple[str, int], ...]  # (top-level folder or file, unzipped bytes), largest first

    def over(self) -> list[str]:
        out = []
        if self.zipped > MAX_ZIPPED_BYTES:
            out.append(f"{self.zipped / 2**20:.1f} MB zipped > {MAX_ZIPPED_BYTES // 2**20} MB")
        if self.unzipped > MAX_UNZIPPED_BYTES:
            out.append(f"{self.unzipped / 2**20:.1f} MB unzipped > {MAX_UNZIPPED_BYTES // 2**20} MB")
        return out

    def largest_line(self, n: int = 5) -> str:
        return ", ".join(f"{name} {size / 2**20:.1f} MB" for name, size in self.largest[:n])


def sizes(path: Path | bytes) -> SizeReport:
    """The zip's (a file, or its bytes) zipped and unzipped size, and its largest top-level entries."""
    by_top: dict[str, int] = defaultdict(int)
    total = 0
    with _open(path) as zf:
        for info in zf.infolist():
            total += info.file_size
            by_top[info.filename.split("/", 1)[0]] += info.file_size
    largest = tuple(sorted(by_top.items(), key=lambda kv: (-kv[1], kv[0])))
    zipped = len(path) if isinstance(path, bytes) else path.stat().st_size
    return SizeReport(zipped, total, largest)

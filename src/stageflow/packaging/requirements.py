"""The one reader of a service's ``requirements.txt``: which lines are requirements, which are exact pins.

``lambda_zip`` installs the lines into the service zip; the security gate's ``service-deps`` audits the
pins (and lists what is not pinned as not auditable).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pin:
    name: str  # as written (callers normalise for comparison)
    version: str


def requirement_lines(text: str) -> list[str]:
    """The lines that say something: comments (whole-line and `` #`` trailing) and blanks dropped."""
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def read_requirement_lines(path: Path) -> list[str]:
    """:func:`requirement_lines` of ``path``; none when there is no such file."""
    if not path.is_file():
        return []
    return requirement_lines(path.read_text(encoding="utf-8"))


def pins(text: str) -> tuple[list[Pin], list[str]]:
    """Exact pins (``name==version``) of a requirements file, and the lines that are not pins (options
    such as ``-r``/``--index-url``, ranges, wildcards, unparsable lines)."""
    from packaging.requirements import InvalidRequirement, Requirement

    found, other = [], []
    for line in requirement_lines(text):
        if line.startswith("-"):
            other.append(line)
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            other.append(line)
            continue
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            found.append(Pin(req.name, specs[0].version))
        else:
            other.append(line)
    return found, other

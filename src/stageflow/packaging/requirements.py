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


# per-requirement options pip accepts after a requirement (hash-locked files carry ``--hash``)
_PER_REQUIREMENT = ("--hash", "--config-settings", "--global-option")


def requirement_lines(text: str) -> list[str]:
    """The logical lines that say something: backslash continuations joined (``pip-compile`` and ``uv
    export`` write one ``--hash`` per line), comments (whole-line and `` #`` trailing) and blanks
    dropped, per-requirement options (``--hash=sha256:…``) taken off the requirement they follow."""
    lines, pending = [], ""
    for raw in text.splitlines():
        line = "" if raw.lstrip().startswith("#") else raw.split(" #", 1)[0]
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical = _without_options(pending + line)
        pending = ""
        if logical:
            lines.append(logical)
    if pending.strip():
        lines.append(_without_options(pending))
    return [ln for ln in lines if ln]


def _without_options(line: str) -> str:
    words = line.split()
    if words and words[0].startswith("-"):  # a global option line (-r, --index-url, ...): as it is
        return " ".join(words)
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith(_PER_REQUIREMENT):
            skip = "=" not in word  # ``--hash sha256:…`` takes the next word
            continue
        kept.append(word)
    return " ".join(kept)


def is_hash_locked(text: str) -> bool:
    """A file pip installs only in ``--require-hashes`` mode (every requirement pinned and hashed)."""
    return any("--hash" in ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))


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

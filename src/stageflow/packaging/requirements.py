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
    return _split_options(line)[0]


def _split_options(line: str) -> tuple[str, list[str]]:
    """(the requirement, its per-requirement options) of a logical line; a global option line (``-r``,
    ``--index-url``, ...) is all requirement, as it is."""
    words = line.split()
    if words and words[0].startswith("-"):
        return " ".join(words), []
    kept, options, takes_value = [], [], False
    for word in words:
        if takes_value:
            options.append(word)
            takes_value = False
        elif word.startswith(_PER_REQUIREMENT):
            options.append(word)
            takes_value = "=" not in word  # ``--hash sha256:…`` takes the next word
        else:
            kept.append(word)
    return " ".join(kept), options


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


def lambda_environment(pyver: str, machine: str) -> dict[str, str]:
    """PEP 508 marker variables of a Lambda runtime (``pyver`` such as "3.13", ``machine`` "x86_64" or
    "aarch64"): pip evaluates markers against the interpreter it runs in, never the ``--python-version``
    it installs for, so stageflow evaluates them for the function itself."""
    full = f"{pyver}.0"
    return {
        "python_version": pyver,
        "python_full_version": full,
        "implementation_name": "cpython",
        "implementation_version": full,
        "platform_python_implementation": "CPython",
        "platform_machine": machine,
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_release": "",
        "platform_version": "",
    }


_FILE_OPTIONS = ("-r", "--requirement", "-c", "--constraint")


def for_target(text: str, environment: dict[str, str], base: Path | None = None) -> tuple[str, int]:
    """``text`` (a requirements file) as pip should install it for ``environment``: a requirement whose
    marker is false there is left out, a true marker is taken off (``poetry export`` and ``uv export``
    write ``name==1.0 ; python_version >= "3.13"`` on every line); options and ``--hash``es stay with
    their requirement; ``-r``/``-c`` paths are made absolute against ``base`` (the file's folder), as the
    text is installed from elsewhere. Files it includes are not rewritten. Returns (the text, how many
    requirements apply)."""
    from packaging.requirements import InvalidRequirement, Requirement

    out, applies, pending = [], 0, ""
    for raw in text.splitlines():
        line = "" if raw.lstrip().startswith("#") else raw.split(" #", 1)[0]
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical, pending = (pending + line).strip(), ""
        if not logical:
            continue
        requirement, options = _split_options(logical)
        if not options and logical.startswith("-"):
            out.append(_absolute(logical, base))
            continue
        try:
            req = Requirement(requirement)
        except InvalidRequirement:
            out.append(logical)  # pip says what is wrong with it
            applies += 1
            continue
        if req.marker is not None:
            if not req.marker.evaluate(environment):
                continue
            requirement = requirement[: requirement.rindex(";")].rstrip()
        out.append(" ".join([requirement, *options]))
        applies += 1
    return "".join(f"{ln}\n" for ln in out), applies


def _absolute(option_line: str, base: Path | None) -> str:
    words = option_line.split(None, 1)
    name, _, value = words[0].partition("=")
    if len(words) == 2 and not value:
        value = words[1].strip()
    if base is None or name not in _FILE_OPTIONS or not value or Path(value).is_absolute() or "://" in value:
        return option_line
    return f"{name} {base / value}"

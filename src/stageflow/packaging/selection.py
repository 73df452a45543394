"""What of ``service.source`` ships: the default exclusions plus ``[service] include`` / ``exclude`` globs.

One answer for two questions: :meth:`Selection.ships` decides each file of the Lambda zip, and
:meth:`Selection.pathspecs` says the same thing to git (DORA's lead time starts at the commit that last
changed what ships, :mod:`stageflow.dora.commit`).

Globs are relative to ``service.source`` and use ``/``: ``*`` and ``?`` stay within one path segment,
``**`` spans any number of them (``**/*.md``: every Markdown file), ``[abc]`` is a set. A glob that
matches a directory takes everything under it (``cdk`` = ``cdk/`` = ``cdk/**``). With ``include``, only
what an include glob matches ships; ``exclude`` wins over ``include``. The defaults: dotfiles and dot
directories, bytecode and ``ANY_DEPTH_DIRS`` anywhere, and ``TOP_DIRS`` directly under the source
(a ``TOP_DIRS`` entry that an include glob starts with, e.g. ``include = ["events/**", ...]``, ships).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

# caches and tests, wherever they are (tests at any depth: app/service/tests/ too)
ANY_DEPTH_DIRS = ("__pycache__", "node_modules", "tests")
# tests, tooling and infrastructure directly under the source: never imported by the function
TOP_DIRS = (
    "test",
    "cdk",
    "cdk.out",
    "infrastructure",
    "infra",
    "terraform",
    "venv",
    "events",
    "docs",
    "build",
    "dist",
    "htmlcov",
)
EXCLUDE_SUFFIXES = (".pyc", ".pyo")


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable glob (None: it is)."""
    if not pattern.strip("/ "):
        return "is empty"
    if pattern.startswith("/") or "\\" in pattern:
        return "must be relative to service.source, with '/' (e.g. 'cdk/**')"
    if ".." in pattern.split("/"):
        return "must stay inside service.source (no '..')"
    if pattern.count("[") != pattern.count("]"):
        return "has an unclosed '['"
    return None


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of one glob, matched against a whole relative path."""
    parts = [p for p in pattern.strip("/").split("/") if p]
    out: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:.*/)?")
            continue
        out.append(_segment(part) + ("" if last else "/"))
    return re.compile("".join(out))


def _segment(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = part.index("]", i + 1)
            body = part[i + 1 : end]
            neg = body[:1] in ("!", "^")
            body = body[1:] if neg else body
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _matches(regexes: tuple[re.Pattern[str], ...], rel: str) -> bool:
    """``rel`` or one of its parent directories matches one of ``regexes``."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(rx.fullmatch(c) for rx in regexes for c in candidates)


@dataclass(frozen=True)
class Selection:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @cached_property
    def _include(self) -> tuple[re.Pattern[str], ...]:
        return tuple(map(glob_regex, self.include))

    @cached_property
    def _exclude(self) -> tuple[re.Pattern[str], ...]:
        return tuple(map(glob_regex, self.exclude))

    @cached_property
    def top_dirs(self) -> tuple[str, ...]:
        """The default top-level exclusions this selection keeps (an include glob can name one)."""
        named = {g.strip("/").split("/", 1)[0] for g in self.include}
        return tuple(d for d in TOP_DIRS if d not in named)

    def ships(self, rel: str) -> bool:
        """Whether the file at ``rel`` (relative to the source, with ``/``) goes into the zip."""
        parts = rel.split("/")
        if any(p.startswith(".") for p in parts) or rel.endswith(EXCLUDE_SUFFIXES):
            return False
        if any(p in ANY_DEPTH_DIRS for p in parts[:-1]) or (len(parts) > 1 and parts[0] in self.top_dirs):
            return False
        if self.include and not _matches(self._include, rel):
            return False
        return not _matches(self._exclude, rel)

    def pathspecs(self, source: str) -> list[str]:
        """The same selection as git pathspecs, for ``source`` relative to the repository root (``.``:
        the root itself); the source's ``requirements.txt`` always counts (it is installed)."""
        base = source.strip("/")
        pre = "" if base in ("", ".") else base + "/"
        if self.include:
            specs = [f":(glob){pre}{g.strip('/')}{tail}" for g in self.include for tail in ("", "/**")]
        else:
            specs = [f":(glob){pre}**"]
        specs.append(f":(literal){pre}requirements.txt")
        excluded = [f"**/{d}/**" for d in ANY_DEPTH_DIRS] + ["**/.*", "**/.*/**"]
        excluded += [f"**/*{s}" for s in EXCLUDE_SUFFIXES] + [f"{d}/**" for d in self.top_dirs]
        excluded += [f"{g.strip('/')}{tail}" for g in self.exclude for tail in ("", "/**")]
        return specs + [f":(glob,exclude){pre}{g}" for g in excluded]

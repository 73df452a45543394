"""The service's own tool settings, found in its source folder (``service.source``): which ruff
configuration lint uses, and what coverage measures and against which floor.

- **ruff**: ``.ruff.toml``, ``ruff.toml``, or ``pyproject.toml`` with ``[tool.ruff]`` (ruff's own order of
  precedence); none → ruff's defaults. Never the settings of the repository around the service.
- **coverage**: ``.coveragerc``, ``setup.cfg`` / ``tox.ini`` ``[coverage:*]``, or ``pyproject.toml``
  ``[tool.coverage.*]`` (coverage's own order). Its settings apply as written; when they say nothing of
  what to measure (no ``source``, ``source_pkgs`` or ``include``), what is measured is what is shipped:
  the service's folder less every Python file the Lambda zip leaves out (tests, tooling). Its
  ``fail_under`` becomes the floor; stageflow judges the floor itself (pytest-cov does not).
"""

from __future__ import annotations

import configparser
import io
import os
import tomllib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stageflow.errors import UsageError
from stageflow.packaging import lambda_zip

RUFF_FILES = (".ruff.toml", "ruff.toml", "pyproject.toml")
COVERAGE_FILES = ((".coveragerc", ""), ("setup.cfg", "coverage:"), ("tox.ini", "coverage:"))
_WHAT_TO_MEASURE = ("source", "source_pkgs", "include")
_OURS = {("report", "fail_under"), ("run", "data_file")}  # judged / placed by stageflow


def ruff_config(source: Path) -> Path | None:
    """The service's own ruff settings file in ``source``, or None (then ruff's defaults apply)."""
    for name in RUFF_FILES:
        path = source / name
        if not path.is_file():
            continue
        if name != "pyproject.toml" or "ruff" in _toml(path).get("tool", {}):
            return path
    return None


@dataclass(frozen=True)
class CoverageSettings:
    """What the unit stage's coverage run uses: the service's settings (``origin``) with what stageflow
    adds, as INI sections for a ``--cov-config`` file."""

    origin: str | None  # "svc/pyproject.toml [tool.coverage]"; None: the service has none
    sections: Mapping[str, Mapping[str, str]]
    fail_under: float | None  # the service's own floor, if it sets one
    measures: str  # what is measured, for the stage's line

    def describe(self) -> str:
        where = self.origin or "stageflow's defaults (the service has no coverage settings)"
        return f"{where}; measures {self.measures}"

    def write(self, path: Path) -> Path:
        lines: list[str] = []
        for section, values in self.sections.items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                if "\n" in value:
                    lines.append(f"{key} =" + "".join(f"\n    {v}" for v in value.splitlines() if v.strip()))
                else:
                    lines.append(f"{key} = {value}")
            lines.append("")
        path.write_text("\n".join(lines), encoding="utf-8")
        return path


def coverage_settings(source: Path, root: Path) -> CoverageSettings:
    """The service's coverage settings (first file that has some, as coverage itself looks), completed
    with stageflow's default of measuring what is shipped when they name nothing to measure."""
    origin, found = _service_coverage(source)
    sections = {name: dict(values) for name, values in found.items()}
    fail_under = None
    if "fail_under" in sections.get("report", {}):
        raw = sections["report"]["fail_under"]
        try:
            fail_under = float(raw)
        except ValueError:
            raise UsageError(f"{_shown(origin, root)}: fail_under must be a number, got {raw!r}") from None
    for section, key in _OURS:
        sections.get(section, {}).pop(key, None)
    run = sections.setdefault("run", {})
    if any(k in run for k in _WHAT_TO_MEASURE):
        measures = ", ".join(f"{k} {' '.join(run[k].split())}" for k in _WHAT_TO_MEASURE if k in run)
    else:
        left_out = not_shipped(source)
        run["source"] = str(source)
        omitted = [ln for ln in run.get("omit", "").splitlines() if ln.strip()]
        run["omit"] = "\n" + "\n".join([*omitted, *(str(p) for p in [*left_out, *vendored_helper(source)])])
        rel = source.relative_to(root) if source.is_relative_to(root) else source
        measures = f"what is shipped ({rel}; {len(left_out)} Python file(s) the zip leaves out not measured)"
    shown = None if origin is None else _shown(origin, root)
    return CoverageSettings(shown, sections, fail_under, measures)


def vendored_helper(source: Path) -> list[Path]:
    """stageflow's runtime secrets helper vendored unchanged into the service (docs/secrets.md): tested
    by stageflow, so not the service's coverage. A changed copy is the service's code and is measured."""
    own = Path(__file__).resolve().parents[1] / "data" / "stageflow_secrets.py"
    copy = source / "stageflow_secrets.py"
    return [copy] if copy.is_file() and copy.read_bytes() == own.read_bytes() else []


def not_shipped(source: Path) -> list[Path]:
    """The service's Python files the Lambda zip does not carry (its tests, its tooling)."""
    with zipfile.ZipFile(io.BytesIO(lambda_zip.package(source).data)) as zf:
        shipped = {source / name for name in zf.namelist()}
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        out += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return [p for p in out if p not in shipped]


def _service_coverage(source: Path) -> tuple[tuple[Path, str] | None, dict[str, dict[str, str]]]:
    for name, prefix in COVERAGE_FILES:
        path = source / name
        if path.is_file():
            cp = configparser.RawConfigParser()
            try:
                cp.read(path, encoding="utf-8")
            except configparser.Error as exc:
                raise UsageError(f"{path}: not a valid INI file: {str(exc).splitlines()[0]}") from None
            sections = {s[len(prefix) :]: dict(cp.items(s)) for s in cp.sections() if s.startswith(prefix)}
            if sections or name == ".coveragerc":
                return (path, f"[{prefix}*]" if prefix else ""), sections
    pyproject = source / "pyproject.toml"
    if pyproject.is_file():
        tool = _toml(pyproject).get("tool", {}).get("coverage")
        if isinstance(tool, dict) and tool:
            sections = {
                s: {k: _ini_value(v) for k, v in values.items()}
                for s, values in tool.items()
                if isinstance(values, dict)
            }
            return (pyproject, "[tool.coverage]"), sections
    return None, {}


def _shown(origin: tuple[Path, str], root: Path) -> str:
    path, label = origin
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    return f"{rel} {label}".strip()


def _ini_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "\n" + "\n".join(str(v) for v in value)
    return str(value)


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {str(exc).splitlines()[0]}") from None

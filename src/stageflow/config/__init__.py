"""Load and validate ``stageflow.toml`` into frozen dataclasses. All defaults live here.

Validation is strict: an unknown key, a value of the wrong type, a weight outside 0-100, steps that do
not increase or an unknown environment raise :class:`~stageflow.errors.ConfigError` naming the file,
the dotted key and the reason (exit code 2). ``model.py`` holds the types and the design's defaults,
``parse.py`` the reading of each table.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from datetime import datetime, time
from pathlib import Path
from typing import Any

from stageflow.config.model import (
    DEFAULT_CONFIG_NAME,
    DEFAULT_ENVIRONMENTS,
    ENV_NAME_RE,
    FROM_TERRAFORM,
    GENERIC_ENVIRONMENT,
    Approvals,
    CanaryPolicy,
    CanaryStep,
    Config,
    EnvironmentConfig,
    EnvironmentTests,
    FunctionConfig,
    Gates,
    Notifications,
    ServiceConfig,
    ServiceTests,
    TerraformSettings,
)
from stageflow.config.parse import parse
from stageflow.errors import ConfigError

__all__ = [
    "Approvals",
    "CanaryPolicy",
    "CanaryStep",
    "Config",
    "DEFAULT_CONFIG_NAME",
    "DEFAULT_ENVIRONMENTS",
    "ENV_NAME_RE",
    "EnvironmentConfig",
    "EnvironmentTests",
    "FROM_TERRAFORM",
    "FunctionConfig",
    "GENERIC_ENVIRONMENT",
    "Gates",
    "Notifications",
    "ServiceConfig",
    "ServiceTests",
    "TerraformSettings",
    "find_config",
    "load",
    "parse",
    "to_plain",
]


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            str(p), "-", "file not found", "run from the repository root or pass --config PATH"
        ) from None
    except OSError as exc:
        raise ConfigError(str(p), "-", f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "-", f"not valid TOML: {exc}") from None
    return parse(data, p)


def to_plain(obj: Any) -> Any:
    """Dataclasses and mappings as plain JSON-able values (for --json output)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, datetime | time):
        return obj.isoformat()
    return obj


def find_config(start: Path | None = None) -> Path:
    """The nearest stageflow.toml from ``start`` upwards, or ``./stageflow.toml``."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        candidate = d / DEFAULT_CONFIG_NAME
        if candidate.is_file():
            return candidate
    return here / DEFAULT_CONFIG_NAME

"""Chaos experiments as data: ``chaos/experiments.toml`` (the repository's), read strictly.

An experiment names a fault, how much of the canary version's traffic it hits and for how long, and
what it expects: ``rollback`` (the gates or an alarm stop the canary and it rolls back) or
``within_gates`` (the canary stays within its gates and is promoted). Suites list experiments;
``[environments]`` says which suite an environment runs when no ``--suite`` is given. A bad file is
exit 2 naming the key, before anything runs.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stageflow.errors import ConfigError

FAULTS = ("latency", "error", "timeout", "dependency_throttle")
EXPECTS = ("rollback", "within_gates")
TARGETS = ("canary", "all")  # the canary version only, or every version serving (a slower dependency)
DEFAULT_FILE = Path("chaos") / "experiments.toml"
BUILTIN_FILE = Path(__file__).resolve().parents[1] / "data" / "chaos.toml"
MAX_INVOCATIONS_PER_MINUTE = 200
MAX_DURATION_MINUTES = 240


@dataclass(frozen=True)
class Experiment:
    name: str
    fault: str
    expect: str
    description: str = ""
    percent: float = 100.0
    latency_ms: float = 0.0
    status_code: int = 429  # dependency_throttle on AWS: what the caller gets
    duration_minutes: int = 30
    invocations_per_minute: int = 20
    target: str = "canary"

    @property
    def fis_action(self) -> str:
        return {
            "latency": "aws:lambda:invocation-add-delay",
            "timeout": "aws:lambda:invocation-add-delay",
            "error": "aws:lambda:invocation-error",
            "dependency_throttle": "aws:lambda:invocation-http-integration-response",
        }[self.fault]


@dataclass(frozen=True)
class ChaosPlan:
    experiments: dict[str, Experiment]
    suites: dict[str, tuple[str, ...]]
    environments: dict[str, str]  # environment -> suite
    source: str

    def select(self, env_name: str, suite: str | None, experiment: str | None) -> list[Experiment]:
        """The experiments to run: one by name, a suite, or the environment's suite."""
        if experiment is not None:
            if experiment not in self.experiments:
                raise ConfigError(
                    self.source,
                    "experiments",
                    f"no experiment named {experiment!r}",
                    f"known: {', '.join(sorted(self.experiments))}",
                )
            return [self.experiments[experiment]]
        name = suite or self.environments.get(env_name)
        if name is None:
            raise ConfigError(
                self.source,
                "environments",
                f"no chaos suite for environment {env_name!r}",
                "pass --suite basic|full or --experiment NAME",
            )
        if name not in self.suites:
            raise ConfigError(
                self.source, "suites", f"no suite named {name!r}", f"known: {', '.join(sorted(self.suites))}"
            )
        return [self.experiments[n] for n in self.suites[name]]


def _num(r: dict, key: str, src: str, where: str, default: float, lo: float, hi: float) -> float:
    value = r.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(src, f"{where}.{key}", "must be a finite number")
    if not lo <= value <= hi:
        raise ConfigError(src, f"{where}.{key}", f"must be between {lo:g} and {hi:g}")
    return float(value)


def _experiment(name: str, r: Any, src: str) -> Experiment:
    where = f"experiments.{name}"
    if not isinstance(r, dict):
        raise ConfigError(src, where, "must be a table")
    allowed = {
        "fault",
        "expect",
        "description",
        "percent",
        "latency_ms",
        "status_code",
        "duration_minutes",
        "invocations_per_minute",
        "target",
    }
    unknown = sorted(set(r) - allowed)
    if unknown:
        raise ConfigError(
            src, f"{where}.{unknown[0]}", "unknown key", f"allowed: {', '.join(sorted(allowed))}"
        )
    fault, expect = r.get("fault"), r.get("expect")
    if fault not in FAULTS:
        raise ConfigError(src, f"{where}.fault", f"must be one of {', '.join(FAULTS)}")
    if expect not in EXPECTS:
        raise ConfigError(src, f"{where}.expect", f"must be one of {', '.join(EXPECTS)}")
    target = r.get("target", "canary")
    if target not in TARGETS:
        raise ConfigError(src, f"{where}.target", f"must be one of {', '.join(TARGETS)}")
    latency = _num(r, "latency_ms", src, where, 0.0, 0.0, 60_000.0)
    if fault == "latency" and latency <= 0:
        raise ConfigError(src, f"{where}.latency_ms", "a latency fault needs latency_ms > 0")
    return Experiment(
        name=name,
        fault=fault,
        target=target,
        expect=expect,
        description=str(r.get("description", "")),
        percent=_num(r, "percent", src, where, 100.0, 1.0, 100.0),
        latency_ms=latency,
        status_code=int(_num(r, "status_code", src, where, 429, 100, 599)),
        duration_minutes=int(_num(r, "duration_minutes", src, where, 30, 1, MAX_DURATION_MINUTES)),
        invocations_per_minute=int(
            _num(r, "invocations_per_minute", src, where, 20, 1, MAX_INVOCATIONS_PER_MINUTE)
        ),
    )


def parse_plan(data: Any, source: str) -> ChaosPlan:
    if not isinstance(data, dict):
        raise ConfigError(source, "", "must be a TOML document")
    unknown = sorted(set(data) - {"experiments", "suites", "environments"})
    if unknown:
        raise ConfigError(source, unknown[0], "unknown key", "allowed: experiments, suites, environments")
    raw = data.get("experiments") or {}
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(source, "experiments", "at least one [experiments.NAME] table is needed")
    experiments = {name: _experiment(name, r, source) for name, r in raw.items()}
    suites: dict[str, tuple[str, ...]] = {}
    for name, members in (data.get("suites") or {}).items():
        if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
            raise ConfigError(source, f"suites.{name}", "must be a non-empty list of experiment names")
        missing = [m for m in members if m not in experiments]
        if missing:
            raise ConfigError(source, f"suites.{name}", f"names no experiment {missing[0]!r}")
        suites[name] = tuple(members)
    environments = {}
    for env_name, suite in (data.get("environments") or {}).items():
        if suite not in suites:
            raise ConfigError(source, f"environments.{env_name}", f"names no suite {suite!r}")
        environments[env_name] = suite
    return ChaosPlan(experiments, suites, environments, source)


def load_plan(root: Path, path: Path | None = None) -> ChaosPlan:
    """The repository's ``chaos/experiments.toml`` (or ``path``), else the built-in default."""
    chosen = path or (root / DEFAULT_FILE if (root / DEFAULT_FILE).is_file() else BUILTIN_FILE)
    try:
        data = tomllib.loads(Path(chosen).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(chosen), "", "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(chosen), "", f"not valid TOML: {exc}") from None
    return parse_plan(data, str(chosen))

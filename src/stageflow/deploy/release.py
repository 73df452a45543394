"""Several functions, one release: the functions of a service as one unit the canary driver and the
rollback core move together.

A :class:`Release` holds one :class:`Member` per function (its key in ``stageflow.toml``, its alias
router and, for a deploy, its publisher, pre-traffic check, gate reader and traffic feed). A
deployment's record keeps every function's versions in ``Deployment.functions``
(``{key: {"function", "alias", "from_version", "to_version"}}``); a record written before several
functions existed (one function, only ``previous_version``/``version``) reads as its one function.

Standard library only: the rollback function's zip carries this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stageflow.deploy.records import Deployment
    from stageflow.ports import AliasRouter, FunctionCheck, Publisher


@dataclass(frozen=True)
class Member:
    """One function of the release and the ports that act on it (a rollback needs only ``traffic``)."""

    key: str
    traffic: AliasRouter
    publisher: Publisher | None = None
    check: FunctionCheck | None = None
    gates: Any = None  # deploy.gates.GateReader of this function
    feed_for: Callable[..., Any] | None = None  # (scenario, start) -> TrafficFeed | None

    @property
    def function(self) -> str:
        return self.traffic.function

    @property
    def alias(self) -> str:
        return self.traffic.alias


@dataclass(frozen=True)
class Versions:
    """One function's side of a deployment: the version it served before and the one it ships
    (equal when this function had nothing new to publish; None when the record does not say)."""

    key: str
    function: str
    alias: str
    from_version: str | None
    to_version: str | None

    @property
    def changed(self) -> bool:
        return bool(self.to_version) and self.to_version != self.from_version

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
        }


@dataclass(frozen=True)
class Release:
    members: tuple[Member, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a release has at least one function")

    @property
    def single(self) -> bool:
        return len(self.members) == 1

    @property
    def first(self) -> Member:
        return self.members[0]

    def versions(self, dep: Deployment) -> list[tuple[Member, Versions]]:
        """Every function's versions in ``dep``. One function: the record's ``previous_version`` /
        ``version`` (records written before ``functions`` existed read the same). Several: the
        record's ``functions``; a function the record does not name has None for both."""
        out = []
        for m in self.members:
            if self.single:
                vs = Versions(m.key, m.function, m.alias, dep.previous_version, dep.version or None)
            else:
                got: Mapping[str, Any] = (dep.functions or {}).get(m.key) or {}
                vs = Versions(m.key, m.function, m.alias, got.get("from_version"), got.get("to_version"))
            out.append((m, vs))
        return out

    def changed(self, dep: Deployment) -> list[tuple[Member, Versions]]:
        """The functions that take a new version in ``dep`` (what shifts, is checked and judged)."""
        return [(m, v) for m, v in self.versions(dep) if v.changed]

    def label(self, m: Member, version: str | None) -> str:
        """``v5`` for a one-function release (today's lines), ``orders-api v5`` for several."""
        return f"v{version}" if self.single else f"{m.key} v{version}"


def functions_record(pairs: list[tuple[Member, Versions]]) -> dict[str, dict[str, Any]]:
    """``Deployment.functions`` from each function's versions."""
    return {m.key: v.to_json() for m, v in pairs}


def release_label(dep: Deployment) -> str:
    """How lines name a deployment's versions: ``v5`` (one function), or ``v5 (api v5, worker v3)``."""
    funcs = dep.functions or {}
    if len(funcs) <= 1:
        return f"v{dep.version}"
    inner = ", ".join(f"{k} v{f.get('to_version')}" for k, f in funcs.items())
    return f"release ({inner})"


def previous_label(dep: Deployment) -> str:
    funcs = dep.functions or {}
    if len(funcs) <= 1:
        return f"v{dep.previous_version}"
    inner = ", ".join(f"{k} v{f.get('from_version')}" for k, f in funcs.items())
    return f"the previous versions ({inner})"


@dataclass(frozen=True)
class ReleaseOutcome:
    """Every function's check as one ``CheckOutcome``: failed when any failed, its line every one's."""

    outcomes: tuple[Any, ...]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def status(self) -> str:
        if not self.ok:
            return "failed"
        return "not run" if all(o.status == "not run" for o in self.outcomes) else "passed"

    @property
    def reason(self) -> str:
        return "; ".join(o.line() for o in self.outcomes if not o.ok)

    def line(self) -> str:
        return "; ".join(o.line() for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        first = next((o for o in self.outcomes if not o.ok), self.outcomes[0])
        return {**first.to_json(), "status": self.status, "functions": [o.to_json() for o in self.outcomes]}


def check_aliases(release: Release):
    """The smoke check after promotion: every function through its alias with its own smoke event."""
    outcomes = tuple(m.check.check(m.alias) for m in release.members)
    return outcomes[0] if release.single else ReleaseOutcome(outcomes)


def at_once(calls: list[Callable[[], object]]) -> list[object]:
    """Every call's answer, or the Exception it raised, in order; two or more run in threads at once
    (the functions' pre-traffic checks: each cold start in its own execution environment)."""

    def settle(call: Callable[[], object]) -> object:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, which judges it
            return exc

    if len(calls) < 2:
        return [settle(c) for c in calls]
    with ThreadPoolExecutor(max_workers=min(8, len(calls)), thread_name_prefix="pre-traffic") as pool:
        return list(pool.map(settle, calls))

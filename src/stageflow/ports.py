"""The ports the core (canary driver, rollback, pipeline) talks to.

Implementations by technology live beside the code that needs them (``DynamoHistory``,
``AliasTraffic``, ``LambdaPublisher``, ``SnsNotifier``/``SlackNotifier``, ``Reporter``,
``CloudWatchSource``); in-memory fakes for unit tests live in ``tests/fakes.py``. The metric-side ports
(``MetricSource``, ``AlarmSource``, ``TrafficFeed``) are in :mod:`stageflow.metrics.interface`.

Only :mod:`stageflow.factory` (the composition root) picks implementations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from stageflow.deploy.records import Deployment, Transition, VerdictRecord


# -- what flows through the ports (plain data; the implementations import these from here) -----------
class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class AliasState:
    primary: str  # FunctionVersion of the alias
    extra: dict[str, float]  # AdditionalVersionWeights: version -> fraction
    revision: str | None = field(default=None, compare=False)  # the alias's RevisionId when read

    @property
    def weights(self) -> dict[str, int]:
        """version -> percent of traffic (rounded); the primary gets the rest."""
        out = {v: round(w * 100) for v, w in self.extra.items() if w > 0}
        out[self.primary] = 100 - sum(out.values())
        return out

    @property
    def settled(self) -> bool:
        return not any(w > 0 for w in self.extra.values())


@dataclass(frozen=True)
class Published:
    version: str | None  # None: nothing to deploy
    previous_version: str
    code_sha256: str
    reason: str
    changed: tuple[str, ...] = ()  # what differs from the serving version: "code", "environment (KEY)", ...


@dataclass(frozen=True)
class LambdaZip:
    data: bytes
    code_sha256: str  # base64 of the SHA-256 digest, as Lambda's CodeSha256
    hexdigest: str
    files: int

    @property
    def digest(self) -> str:
        return f"sha256:{self.hexdigest}"


@dataclass(frozen=True)
class Message:
    kind: str  # started | approval_needed | promoted | succeeded | rolled_back | failed
    environment: str
    service: str
    deployment_id: str
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return f"[{self.service} {self.environment}] {self.kind.replace('_', ' ')}: {self.deployment_id}"[:99]

    def body(self) -> dict:
        return {
            "kind": self.kind,
            "environment": self.environment,
            "service": self.service,
            "deployment_id": self.deployment_id,
            "text": self.text,
            **dict(self.data),
        }


@runtime_checkable
class DeploymentHistory(Protocol):
    """Deployment records, every transition, the per-environment deploy lock, rollback events."""

    def create(self, dep: Deployment) -> None: ...
    def get(self, deployment_id: str) -> Deployment | None: ...
    def update(
        self,
        dep: Deployment,
        *,
        transition: Transition | None = None,
        verdict: VerdictRecord | None = None,
        **changes: Any,
    ) -> Deployment:
        """The record after the write (records are frozen: use the returned one)."""
        ...

    def list(self, limit: int = 20) -> list[Deployment]: ...
    def in_flight(self) -> Deployment | None: ...
    def last_known_good(self, exclude_version: str | None = None) -> Deployment | None: ...
    def acquire_lock(self, deployment_id: str, who: str, now: datetime) -> None: ...
    def release_lock(self, deployment_id: str) -> bool: ...
    def lock(self) -> dict | None: ...
    def break_lock(self, reason: str, who: str, now: datetime) -> dict | None: ...
    def record_event(self, kind: str, now: datetime, data: Any) -> None: ...
    def events(self, limit: int = 50) -> list[dict]: ...
    def freeze_item(self) -> dict | None: ...
    def set_freeze(self, until: datetime, reason: str, who: str, now: datetime) -> None: ...
    def clear_freeze(self, reason: str, who: str, now: datetime) -> dict | None: ...
    def record_incident(self, incident: Mapping[str, Any]) -> None: ...
    def incident(self, key: str) -> dict | None: ...
    def incidents(self, limit: int = 20) -> list[dict]: ...
    def incidents_since(self, since: datetime) -> list[dict]: ...
    def recent_verdicts(self, deployment_id: str, n: int = 3) -> list[VerdictRecord]: ...
    def all_verdicts(self, deployment_id: str, limit: int = 500) -> list[VerdictRecord]: ...
    def since(self, since: datetime) -> tuple[list[Deployment], list[dict]]:
        """Deployments started at or after ``since`` and the events recorded since, oldest first."""
        ...


@runtime_checkable
class AliasRouter(Protocol):
    """Which versions an alias serves, and moving its traffic."""

    function: str
    alias: str

    def state(self) -> AliasState: ...
    def set_canary(self, stable: str, canary: str, weight: int) -> AliasState: ...
    def restore(self, version: str) -> AliasState: ...
    def require_version(self, version: str) -> None: ...
    def version_exists(self, version: str) -> bool: ...


@runtime_checkable
class Publisher(Protocol):
    """Publishes the function's current code and configuration as a new version, when anything that
    reaches traffic changed since the version the alias serves."""

    def publish(self, artifact: LambdaZip, *, description: str = "") -> Published: ...


class CheckOutcome(Protocol):
    """What a function check found (``invokecheck.InvokeResult``): passed, failed or not run, and why."""

    status: str  # "passed" | "failed" | "not run"
    reason: str

    @property
    def ok(self) -> bool: ...
    def line(self) -> str: ...
    def to_json(self) -> dict: ...


@runtime_checkable
class FunctionCheck(Protocol):
    """Invokes the function (a published version before it takes traffic, or the alias after the
    promotion) with its smoke event and judges the answer. An answer that could not be had (AWS
    unreachable, no interpreter for the runtime on this machine) raises an ``EnvironmentFailure``."""

    function: str

    def check(self, qualifier: str) -> CheckOutcome: ...


@runtime_checkable
class Notifier(Protocol):
    def send(self, msg: Message) -> None: ...


@runtime_checkable
class ProgressObserver(Protocol):
    """Where the core reports progress. ``Reporter`` is the terminal/JSON one; tests record."""

    def info(self, phase: str, subject: str, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def child(self, line: str) -> None: ...
    def wait(self, clock: Clock, seconds: float, label: str, progress: Any = None) -> None: ...
    def result(self, human: str | None, data: Any) -> None: ...


__all__: Sequence[str] = (
    "AliasRouter",
    "CheckOutcome",
    "DeploymentHistory",
    "FunctionCheck",
    "Notifier",
    "ProgressObserver",
    "Publisher",
)
